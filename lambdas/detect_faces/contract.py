"""Every name shared by the function, the stack, local mode and the operator tools, defined once.

This module imports nothing from the project: it sits at the bottom of the import graph. The layout and the
rules behind these names are described in docs/DESIGN.md.
"""

from __future__ import annotations

import enum

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


class Status(enum.StrEnum):
    """The `status` of an image's summary item."""

    PROCESSING = "PROCESSING"  # claimed by an invocation that is working on it
    DETECTED = "DETECTED"  # DetectFaces succeeded; face_count may be 0
    REJECTED = "REJECTED"  # the object can never be analysed (format, size, corrupt); not retried
    FAILED = "FAILED"  # sent to the DLQ by the function (object unreadable); redrive to retry
    RETRYING = "RETRYING"  # the invocation failed; Lambda retries, then its on-failure destination (DLQ)
    DELETED = "DELETED"  # tombstone: the object (or the analysed version) was removed, its face data deleted


class Metric(enum.StrEnum):
    """The function's count metrics (Powertools EMF, namespace METRICS_NAMESPACE)."""

    DETECTED = "ImagesDetected"
    FACES = "FacesFound"
    REJECTED = "ImagesRejected"
    DEAD_LETTERED = "ImagesSentToDLQ"
    THROTTLED_RETRIES = "ThrottledRetries"
    SKIPPED = "DuplicateOrStaleEvents"
    DELETED = "ResultsDeleted"
    FAILED = "RecordsFailed"


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

# ---- operator events -----------------------------------------------------------------------------------
# An event that carries this key is an operator's replay of a dead-lettered record (`facepipe redrive`).
# Its value names the redrive run, so that run can tell the failure records its own replays create.
REDRIVE_FLAG = "facepipeRedrive"

# Records `facepipe backfill` makes for objects that were in the bucket before the stack.
BACKFILL_EVENT_NAME = "ObjectCreated:Backfill"
BACKFILL_EVENT_SOURCE = "facepipe:backfill"
# The lowest sequencer there is: any real event of the key outranks a backfill result.
BACKFILL_SEQUENCER = "0"
