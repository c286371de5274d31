"""The core of the redaction function: one outcome event to one action on the image's redacted copy
(docs/REDACTION.md).

- `Faces Detected`, the results table still naming this outcome: a copy of that very version with every face
  hidden (an image with no face is copied as it is, re-encoded without its metadata);
- `Faces Detected`, the table naming another outcome: skipped, that outcome's own event decides the copy;
- `Image Deleted`, `Image Rejected`, `Image Failed`: the copy is deleted when it is older than this outcome (the
  image's current version has no copy: a mirror never shows a version the source no longer has).

Which failures are records in the DLQ (`failure_record`'s shape, `requestPayload` = the event, so `facepipe redrive`
replays it) and which fail the invocation (Lambda retries it, then its on-failure destination, the same DLQ):

- a failure record (and the invocation succeeds): an event that is not an outcome event; an image that cannot be
  decoded (corrupt, not JPEG or PNG, larger than the memory rule allows, a face without a box); a source object
  gone, replaced or unreadable while the table still names it after SETTLE_DELAYS (when the table moves on
  meanwhile, the newer outcome's event decides and the event is skipped); a copy key longer than S3 allows;
- raised: throttling and 5xx of S3, DynamoDB and SQS (botocore's standard retry mode has tried 3 times with
  backoff), a face count that disagrees with the faces read (a result being replaced), conditional writes that
  kept losing (CopyContended), and anything unexpected.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from detect_faces.contract import InvocationContext, OutcomeEvent, Status
from detect_faces.dead_letters import failure_record
from detect_faces.errors import error_code

from .copies import (
    META_REDACTION,
    META_SOURCE_ETAG,
    META_SOURCE_VERSION,
    CopyKeyTooLong,
    Decision,
    RedactedCopies,
    StoredCopy,
    copy_key,
)
from .outcomes import NULL_VERSION, InvalidOutcomeEvent, Outcome, parse
from .redact import ImageProblem, ImageTooLarge, Redacted, redact_image

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectRequestTypeDef

    from detect_faces.dead_letters import DeadLetterWriter
    from detect_faces.results import ImageResult, ResultsStore

    from .settings import RedactionSettings

logger = Logger(child=True)

# Rekognition reads images of up to 15 MB from S3: a larger object was never analysed, so is never read here.
MAX_SOURCE_BYTES = 15 * 1024 * 1024
# After the source version turned out gone or replaced while the table still names it: how long to wait, between
# looks at the table, for the newer event to take the image (S3 delivers it within seconds; detect_faces claims
# the image first thing). Bounded by the invocation's remaining time.
SETTLE_DELAYS = (1.0, 2.0, 4.0)
DEADLINE_MARGIN_SECONDS = 5.0
# S3 errors worth Lambda's retry (botocore's standard mode already retried them three times).
RETRYABLE_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestLimitExceeded", "InternalError",
     "ServiceUnavailable", "TooManyRequestsException"}
)  # fmt: skip
FIRST_SERVER_ERROR = 500


class Metric(enum.StrEnum):
    """The redaction function's count metrics (Powertools EMF, the stack's namespace)."""

    WRITTEN = "RedactedCopiesWritten"
    DELETED = "RedactedCopiesDeleted"
    SKIPPED = "RedactionEventsSkipped"
    DEAD_LETTERED = "RedactionsSentToDLQ"
    FACES = "FacesRedacted"


class Action(enum.StrEnum):
    WRITTEN = "written"
    DELETED = "deleted"
    SKIPPED = "skipped"
    DEAD_LETTERED = "dead_lettered"


class MetricsSink(Protocol):
    def add_metric(self, name: str, unit: MetricUnit, value: float) -> None: ...


class ResultIncomplete(Exception):
    """The faces read are fewer than the result's face_count: a result being replaced while it was read. Never a
    copy with a face left out: the invocation fails and Lambda's retry reads again."""


class SourceUnavailable(Exception):
    """The analysed version cannot be read: gone, replaced (an unversioned object whose ETag changed), or refused.
    `code` is S3's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Result:
    action: Action
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action.value, "reason": self.reason, **self.details}


def _retryable(exc: ClientError) -> bool:
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return error_code(exc) in RETRYABLE_CODES or status >= FIRST_SERVER_ERROR


class Redactor:
    """Each outcome event to one action on its image's copy, with its collaborators injected (handler.py wires
    them); `sleep` waits between looks at the table (SETTLE_DELAYS)."""

    def __init__(
        self,
        *,
        settings: RedactionSettings,
        s3: S3Client,
        results: ResultsStore,
        copies: RedactedCopies,
        dead_letters: DeadLetterWriter,
        metrics: MetricsSink,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.s3 = s3
        self.results = results
        self.copies = copies
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.sleep = sleep

    def handle_event(self, event: Any, context: InvocationContext) -> dict[str, Any]:
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(function_request_id=context.aws_request_id)
        try:
            outcome = parse(event)
        except InvalidOutcomeEvent as exc:
            return self._finish(self._dead_letter(event, InvalidOutcomeEvent.code, str(exc), context))
        logger.thread_safe_append_keys(
            correlation_id=outcome.uri,
            object_key=outcome.key,
            version_id=outcome.version_id,
            detail_type=outcome.detail_type.value,
            sequencer=outcome.sequencer,
            finished_at=outcome.stamp.finished_at,
            redrive=outcome.redrive,
        )
        if outcome.bucket == self.copies.bucket:
            return self._finish(Result(Action.SKIPPED, "the object is a redacted copy: copies are never redacted"))
        try:
            key = copy_key(outcome.bucket, outcome.key)
        except CopyKeyTooLong as exc:
            return self._finish(self._dead_letter(event, CopyKeyTooLong.code, str(exc), context))
        if outcome.detail_type is OutcomeEvent.FACES_DETECTED:
            return self._finish(self._copy(outcome, key, event, context))
        return self._finish(self._remove(outcome, key))

    # ---- Faces Detected: a copy of that very version ---------------------------------------------------------
    def _copy(self, outcome: Outcome, key: str, event: Any, context: InvocationContext) -> Result:
        result = self._current(outcome)
        if result is None:
            return Result(Action.SKIPPED, "stale: the results table holds another outcome of this image")
        stored = self.copies.head(key)
        if stored is not None and stored.stamp >= outcome.stamp:
            same = stored.stamp == outcome.stamp
            return Result(Action.SKIPPED, Decision.SAME.value if same else Decision.NEWER.value)
        try:
            return self._make(outcome, key, result, stored=stored, event=event, context=context)
        except ImageProblem as exc:
            return self._dead_letter(event, exc.code, f"{outcome.uri}: {exc}", context)

    def _make(
        self,
        outcome: Outcome,
        key: str,
        result: ImageResult,
        *,
        stored: StoredCopy | None,
        event: Any,
        context: InvocationContext,
    ) -> Result:
        """Read the analysed version, hide the result's faces and store the copy, unless a newer one got there."""
        started = time.perf_counter()
        try:
            data = self._source(outcome)
        except SourceUnavailable as exc:
            if self._moved_on(outcome, context):
                return Result(Action.SKIPPED, f"the source changed ({exc.code}) and the table has a newer outcome")
            return self._dead_letter(event, exc.code, f"{outcome.uri}: {exc.message}", context)
        read_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        redacted = redact_image(
            data,
            result.faces,
            mode=self.settings.mode,
            margin=self.settings.margin,
            max_pixels=self.settings.max_pixels,
        )
        redact_ms = (time.perf_counter() - started) * 1000
        decision = self.copies.put(
            key,
            redacted.body,
            content_type=redacted.content_type,
            stamp=outcome.stamp,
            metadata=self._metadata(outcome, redacted),
            stored=stored,
        )
        details = {
            "copy": f"s3://{self.copies.bucket}/{key}",
            "faces": len(redacted.boxes),
            "pixels": redacted.width * redacted.height,
            "bytes_in": len(data),
            "bytes_out": len(redacted.body),
            "read_ms": round(read_ms, 1),
            "redact_ms": round(redact_ms, 1),
        }
        if decision is not Decision.WRITTEN:
            return Result(Action.SKIPPED, decision.value, details)
        self.metrics.add_metric(name=Metric.FACES, unit=MetricUnit.Count, value=len(redacted.boxes))
        return Result(Action.WRITTEN, f"{self.settings.mode.value}, {len(redacted.boxes)} faces", details)

    def _current(self, outcome: Outcome) -> ImageResult | None:
        """The image's result when the table still names this very outcome (status, version, sequencer and time),
        with all its faces; else None: another outcome is current, and its own event decides the copy."""
        result = self.results.get(outcome.bucket, outcome.key)
        if result is None or result.status is not Status.DETECTED:
            return None
        version = None if result.version_id in (None, "", NULL_VERSION) else result.version_id
        if (version, result.sequencer, result.finished_at or "") != (
            outcome.version_id,
            outcome.sequencer,
            outcome.stamp.finished_at,
        ):
            return None
        if result.face_count is not None and len(result.faces) != result.face_count:
            raise ResultIncomplete(f"{outcome.uri}: {len(result.faces)} faces read of the {result.face_count} stored")
        return result

    def _source(self, outcome: Outcome) -> bytes:
        """The analysed object's bytes: that version, or, in an unversioned bucket, the object only while its ETag
        is still the analysed one (a GET with IfMatch). Never another object's pixels under this result's faces."""
        params: GetObjectRequestTypeDef = {"Bucket": outcome.bucket, "Key": outcome.key}
        if outcome.version_id:
            params["VersionId"] = outcome.version_id
        elif outcome.etag:
            params["IfMatch"] = '"' + outcome.etag.strip('"') + '"'
        else:
            raise SourceUnavailable("SourceUnidentified", "the outcome names neither a version nor an ETag")
        try:
            response = self.s3.get_object(**params)
        except ClientError as exc:
            if _retryable(exc):
                raise
            raise SourceUnavailable(error_code(exc) or "ClientError", str(exc)) from None
        size = int(response.get("ContentLength") or 0)
        if size > MAX_SOURCE_BYTES:
            response["Body"].close()
            raise ImageTooLarge(f"{size:,} bytes: more than Rekognition reads from S3 ({MAX_SOURCE_BYTES:,})")
        return response["Body"].read()

    def _moved_on(self, outcome: Outcome, context: InvocationContext) -> bool:
        """Whether the table names another outcome of the image now, or within SETTLE_DELAYS: then the source's
        change has its own event, which decides the copy."""
        for delay in (*SETTLE_DELAYS, None):
            if self._current(outcome) is None:
                return True
            remaining = context.get_remaining_time_in_millis() / 1000
            if delay is None or remaining - delay < DEADLINE_MARGIN_SECONDS:
                return False
            self.sleep(delay)
        return False

    def _metadata(self, outcome: Outcome, redacted: Redacted) -> dict[str, str]:
        return {
            META_SOURCE_VERSION: outcome.version_id or NULL_VERSION,
            META_SOURCE_ETAG: outcome.etag or "",
            META_REDACTION: f"{self.settings.mode.value} margin={self.settings.margin:g} faces={len(redacted.boxes)}",
        }

    # ---- Image Deleted, Image Rejected, Image Failed: no copy --------------------------------------------------
    def _remove(self, outcome: Outcome, key: str) -> Result:
        decision = self.copies.delete(key, outcome.stamp)
        if decision is Decision.DELETED:
            return Result(Action.DELETED, f"{outcome.detail_type.value}: the copy is gone")
        return Result(Action.SKIPPED, decision.value)

    # ---- endings -------------------------------------------------------------------------------------------
    def _dead_letter(self, event: Any, error_type: str, message: str, context: InvocationContext) -> Result:
        """A failure record of the usual shape (Lambda's on-failure destination record) with the event as its
        requestPayload: what `facepipe redrive` replays."""
        payload = event if isinstance(event, dict) else {"event": event}
        record = failure_record(
            payload,
            error_type=error_type,
            error_message=message,
            request_id=context.aws_request_id,
            function_arn=context.invoked_function_arn,
            function_version=context.function_version,
        )
        message_id = self.dead_letters.send(record)
        return Result(Action.DEAD_LETTERED, f"{error_type}: {message}", {"message_id": message_id})

    def _finish(self, result: Result) -> dict[str, Any]:
        metric = {
            Action.WRITTEN: Metric.WRITTEN,
            Action.DELETED: Metric.DELETED,
            Action.SKIPPED: Metric.SKIPPED,
            Action.DEAD_LETTERED: Metric.DEAD_LETTERED,
        }[result.action]
        self.metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        log = logger.warning if result.action is Action.DEAD_LETTERED else logger.info
        log("redaction " + result.action.value, action=result.action.value, reason=result.reason, **result.details)
        return result.as_dict()
