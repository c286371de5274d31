"""Every name shared by the function, the stack, local mode and the operator tools, defined once.

This module imports nothing from the project: it sits at the bottom of the import graph. The layout and the
rules behind these names are described in docs/DESIGN.md.
"""

from __future__ import annotations

import enum
from typing import Protocol

SERVICE_NAME = "facepipe"  # Powertools' service (logs, metric dimension)
METRICS_NAMESPACE = "Facepipe"

# ---- the results table ---------------------------------------------------------------------------------
TABLE_PARTITION_KEY = "pk"  # "<bucket>/<key>": one partition per image
TABLE_SORT_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"  # tombstones and malformed-record markers expire
META_SK = "META"  # the image's summary item
FACES_SK_PREFIX = "FACES#"  # "FACES#<sequencer>#<nnnn>": a chunk of FaceDetails
MALFORMED_PK_PREFIX = "#malformed/"  # "#malformed/<sha256>": a dead-lettered malformed record (no bucket starts with #)
# A sparse index of the summary items only (face chunks carry neither attribute): a bucket's images by key.
INDEX_BY_KEY = "by-key"
INDEX_PARTITION_KEY = "bucket"
INDEX_SORT_KEY = "object_key"


class InvocationContext(Protocol):
    """What the functions read of Lambda's context object (tests and the local runtime pass their own)."""

    @property
    def aws_request_id(self) -> str: ...

    @property
    def invoked_function_arn(self) -> str: ...

    @property
    def function_version(self) -> str: ...

    def get_remaining_time_in_millis(self) -> int: ...


class Status(enum.StrEnum):
    """The `status` of an image's summary item."""

    PROCESSING = "PROCESSING"  # claimed by an invocation that is working on it
    DETECTED = "DETECTED"  # DetectFaces succeeded; face_count may be 0
    REJECTED = "REJECTED"  # the object can never be analysed (format, size, corrupt); not retried
    DEAD_LETTERED = "DEAD_LETTERED"  # object unreadable; its failure record is in the DLQ (redrive to retry)
    TASK_FAILED = "TASK_FAILED"  # object unreadable in a backlog task; the job's completion report is its record
    FAILED = "FAILED"  # written before 0.3 for either of the two above; read as "unreadable"
    RETRYING = "RETRYING"  # the invocation failed; Lambda retries, then its on-failure destination (DLQ)
    DELETED = "DELETED"  # tombstone: the object (or the analysed version) was removed, its face data deleted


# The statuses of an object that could not be read: none is a result, each may be taken by a later event.
UNREADABLE = frozenset({Status.DEAD_LETTERED, Status.TASK_FAILED, Status.FAILED})


class Metric(enum.StrEnum):
    """The function's count metrics (Powertools EMF, namespace METRICS_NAMESPACE)."""

    DETECTED = "ImagesDetected"
    FACES = "FacesFound"
    REJECTED = "ImagesRejected"
    DEAD_LETTERED = "ImagesSentToDLQ"
    THROTTLED_RETRIES = "ThrottledRetries"
    SKIPPED = "DuplicateOrStaleEvents"
    DELETED = "ResultsDeleted"
    RECORD_ERRORS = "RecordErrors"  # records that raised: the invocation fails and Lambda retries it
    # The backlog function (backlog.py): its S3 Batch Operations tasks, by the result code each was answered
    BACKLOG_SUCCEEDED = "BacklogTasksSucceeded"
    BACKLOG_TEMPORARY_FAILURE = "BacklogTasksTemporaryFailure"
    BACKLOG_PERMANENT_FAILURE = "BacklogTasksPermanentFailure"


# Milliseconds per DetectFaces call (each attempt of our backoff is one call).
DETECT_FACES_LATENCY = "DetectFacesLatency"


# ---- the function's environment (names; the defaults are Settings' fields, settings.py) ------------------
class EnvVar(enum.StrEnum):
    RESULTS_TABLE = "RESULTS_TABLE"
    FAILURE_QUEUE_URL = "FAILURE_QUEUE_URL"
    FACE_ATTRIBUTES = "FACE_ATTRIBUTES"
    DETECT_MAX_ATTEMPTS = "DETECT_MAX_ATTEMPTS"
    DETECT_BACKOFF_BASE_SECONDS = "DETECT_BACKOFF_BASE_SECONDS"
    DETECT_BACKOFF_MAX_SECONDS = "DETECT_BACKOFF_MAX_SECONDS"
    CLAIM_LEASE_SECONDS = "CLAIM_LEASE_SECONDS"
    # The backlog function's DetectFaces attempts per task (it replaces DETECT_MAX_ATTEMPTS there: backlog.py)
    BACKLOG_DETECT_MAX_ATTEMPTS = "BACKLOG_DETECT_MAX_ATTEMPTS"
    BACKLOG_BACKOFF_BASE_SECONDS = "BACKLOG_BACKOFF_BASE_SECONDS"  # its backoff window (DETECT_BACKOFF_BASE_SECONDS)
    # Powertools' own
    SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
    LOG_LEVEL = "LOG_LEVEL"


FACE_ATTRIBUTE_CHOICES = ("DEFAULT", "ALL")
# The claim outlives the invocation by this much, so a live invocation is never overtaken (docs/DESIGN.md).
CLAIM_LEASE_MARGIN_SECONDS = 30

# ---- Lambda's async invocation config the stack sets by default (facepipe:retryAttempts, :maxEventAgeSeconds)
ASYNC_RETRY_ATTEMPTS = 2
ASYNC_MAX_EVENT_AGE_SECONDS = 6 * 3600

# ---- the dead-letter queue ---------------------------------------------------------------------------------
DLQ_RETENTION_SECONDS = 14 * 24 * 3600

# ---- the stack's outputs, which the operator CLI resolves (`--stack NAME`) -----------------------------
OUTPUT_BUCKET = "UploadsBucketName"
OUTPUT_TABLE = "ResultsTableName"
OUTPUT_DLQ_URL = "DeadLetterQueueUrl"
OUTPUT_DLQ_NAME = "DeadLetterQueueName"
OUTPUT_FUNCTION = "DetectorFunctionName"
OUTPUT_ALARM_TOPIC = "AlarmTopicArn"
OUTPUT_OPERATOR_POLICY = "OperatorPolicyArn"
# Every watched location, space-separated "s3://bucket/prefix" (prefix may be empty: the whole bucket).
OUTPUT_WATCHED = "WatchedLocations"
OUTPUT_NOTIFICATIONS = "NotificationDelivery"  # "s3" or "eventbridge"
# The backlog entry point (S3 Batch Operations, `facepipe backfill --engine batch-operations`).
OUTPUT_BACKLOG_FUNCTION = "BacklogFunctionArn"
OUTPUT_BATCH_JOB_ROLE = "BatchJobRoleArn"
OUTPUT_REPORTS_BUCKET = "ReportsBucketName"
# With outcome events on (facepipe:events): the bus they go to, what could not be delivered, the schema registry
OUTPUT_EVENT_BUS = "OutcomeEventBus"
OUTPUT_EVENTS_UNDELIVERED = "EventsUndeliveredQueueUrl"
OUTPUT_EVENT_SCHEMAS = "EventSchemaRegistryName"
# With redacted copies on (facepipe:redaction): the bucket the copies go to
OUTPUT_REDACTED_BUCKET = "RedactedBucketName"
OUTPUT_REDACTION_FUNCTION = "RedactionFunctionName"  # what redrive replays the redaction function's failures to

# ---- operator events -----------------------------------------------------------------------------------
# An event that carries this key is an operator's replay of a dead-lettered record (`facepipe redrive`).
# Its value names the redrive run, so that run can tell the failure records its own replays create.
REDRIVE_FLAG = "facepipeRedrive"

# Records `facepipe backfill` makes for objects that were in the bucket before the stack.
BACKFILL_EVENT_NAME = "ObjectCreated:Backfill"
BACKFILL_EVENT_SOURCE = "facepipe:backfill"
# The lowest sequencer there is: any real event of the key outranks a backfill record (whose claim keeps the
# stored sequencer: docs/DESIGN.md, "Versions current again").
BACKFILL_SEQUENCER = "0"
# The record the function makes itself when a removal left an older version current (S3 sends no event for it).
CURRENT_AGAIN_EVENT_NAME = "ObjectCreated:CurrentAgain"

# ---- outcome events (outcome_events.py): one EventBridge event for every stored outcome ------------------------
OUTCOME_EVENT_SOURCE = "facepipe"
OUTCOME_EVENTS_HANDLER = "detect_faces.outcome_events.lambda_handler"
OUTCOME_EVENT_BUS_VARIABLE = "OUTCOME_EVENT_BUS"  # the events function's environment: the bus's name or ARN


class OutcomeEvent(enum.StrEnum):
    """The detail-type of an outcome event."""

    FACES_DETECTED = "Faces Detected"
    IMAGE_REJECTED = "Image Rejected"
    IMAGE_FAILED = "Image Failed"
    IMAGE_DELETED = "Image Deleted"


# ---- redacted copies (lambdas/redaction, docs/REDACTION.md): a function on the outcome events ------------------
# The names below are redaction.settings' and redaction.redact's, written again here for the stack, which imports
# nothing of the redaction function (Pillow); tests/infra/test_redaction_stack.py holds the two to each other.
REDACTION_HANDLER = "redaction.handler.lambda_handler"
REDACTION_OFF = "off"  # facepipe:redaction's default: no function, no bucket, nothing of redaction in the stack
REDACTION_MODES = ("blur", "pixelate", "fill")  # redaction.redact.Mode
REDACTION_DEFAULT_MARGIN = 0.15  # redaction.redact.DEFAULT_MARGIN: added to each side, a fraction of the box
REDACTION_MAX_MARGIN = 1.0  # redaction.redact.MAX_MARGIN


class RedactionEnvVar(enum.StrEnum):
    """The redaction function's own environment (redaction.settings.RedactionEnv); it shares RESULTS_TABLE,
    FAILURE_QUEUE_URL and Powertools' with EnvVar."""

    BUCKET = "REDACTION_BUCKET"
    MODE = "REDACTION_MODE"
    MARGIN = "REDACTION_MARGIN"


# ---- S3 Batch Operations (the backlog engine) -------------------------------------------------------------
BACKLOG_HANDLER = "detect_faces.backlog.lambda_handler"
REPORTS_PREFIX = "facepipe-reports/"  # completion reports, in the stack's reports bucket
MANIFESTS_PREFIX = "facepipe-manifests/"  # CSV manifests the CLI writes, same bucket


# ---- how S3 events reach the function (facepipe:notifications) ---------------------------------------------
class Delivery(enum.StrEnum):
    S3 = "s3"  # the bucket's notification configuration invokes the function
    EVENTBRIDGE = "eventbridge"  # the bucket sends to EventBridge; a rule on the default bus invokes it
