"""The plain core: every S3 record of an event to exactly one outcome (docs/DESIGN.md, routing table)."""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from . import calls
from .claims import SCOPE_VERSION, Claim, ImageClaims
from .contract import BACKFILL_EVENT_NAME, REDRIVE_FLAG, InvocationContext, Metric, Status
from .dead_letters import DeadLetterWriter, failure_record
from .errors import ImageRejected, ObjectUnreadable, error_code, error_message
from .model import ImageEvent, InvalidEventError, ObjectRef, Outcome, RecordResult, is_eventbridge_s3
from .objects import ObjectInspector, not_current
from .rekognition import RekognitionFaces
from .retry import MetricsSink
from .settings import Settings

logger = Logger(child=True)


class RecordsFailedError(Exception):
    """Several records of one event failed; Lambda retries the event (finished records are skipped)."""


class ImageBusyError(Exception):
    """Another invocation holds a live claim on this very event (a duplicate delivery running at the same
    time, or an attempt that died). Failing makes Lambda retry later, when the claim is finished or has
    expired; succeeding would end the event with no outcome if the holder had died."""


@dataclass(frozen=True)
class DeadLetter:
    """A live record: an unreadable object's failure record goes to the DLQ. `payload` is what a replay of this one
    object sends (its failure record's requestPayload); `redrive` the run mark of an operator's replay, if any."""

    payload: dict[str, Any]
    redrive: object = None  # the redrive run's mark (contract.REDRIVE_FLAG), or None


class JobReport(enum.Enum):
    """A backlog task: no failure record; the job's completion report is the record (stored TASK_FAILED)."""

    JOB_REPORT = "job report"


JOB_REPORT = JobReport.JOB_REPORT
FailurePolicy = DeadLetter | JobReport


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_claim_token() -> str:
    return uuid.uuid4().hex


class Processor:
    """Each record of an event to one outcome, with its collaborators injected (handler.build_processor wires
    them); `clock` and `new_token` default to the real time and random claim tokens."""

    def __init__(
        self,
        *,
        settings: Settings,
        rekognition: RekognitionFaces,
        inspector: ObjectInspector,
        claims: ImageClaims,
        dead_letters: DeadLetterWriter,
        metrics: MetricsSink,
        clock: Callable[[], datetime] | None = None,
        new_token: Callable[[], str] | None = None,
    ) -> None:
        self.settings = settings
        self.rekognition = rekognition
        self.inspector = inspector
        self.claims = claims
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.clock = clock or utc_now
        self.new_token = new_token or new_claim_token

    def handle_event(self, event: dict[str, Any], context: InvocationContext) -> dict[str, Any]:
        if event.get("Event") == "s3:TestEvent":
            logger.info("s3:TestEvent skipped", bucket=event.get("Bucket"))
            return {"records": [], "skipped": "s3:TestEvent"}
        redrive = event.get(REDRIVE_FLAG) or None
        deliveries = _deliveries(event)
        results: list[dict[str, Any]] = []
        failed: list[tuple[str, Exception]] = []
        for delivery in deliveries:
            # Thread-local keys: in local mode several invocations share one Logger on threads.
            logger.thread_safe_clear_keys()
            logger.thread_safe_append_keys(function_request_id=context.aws_request_id)
            failure = DeadLetter(delivery.payload, redrive)
            try:
                try:
                    results.append(self._process(delivery.parse(), failure, context).as_dict())
                except InvalidEventError as exc:
                    # A malformed record will never parse: dead-letter it now, with the reason, and go on.
                    results.append(self._dead_letter_malformed(failure, exc, context).as_dict())
            except Exception as exc:
                key = delivery.key()
                logger.exception("record failed", key=key, error_type=type(exc).__name__)
                self.metrics.add_metric(name=Metric.RECORD_ERRORS, unit=MetricUnit.Count, value=1)
                failed.append((key, exc))
        logger.thread_safe_clear_keys()
        if len(failed) == 1:
            raise failed[0][1]
        if failed:
            summary = "; ".join(f"{key}: {type(exc).__name__}: {exc}" for key, exc in failed)
            raise RecordsFailedError(f"{len(failed)} of {len(deliveries)} records failed: {summary}") from failed[0][1]
        return {"records": results}

    def process_task(self, event: ImageEvent, context: InvocationContext) -> RecordResult:
        """One object an operator's job names (a backlog task: backlog.py), through the same checks, claim,
        DetectFaces and results as a live upload. `event` is its backfill record (ImageEvent.backfill): the
        object must still be current, a result for that very version is not made again, and every real event of
        the key outranks it. Unlike a live record, an unreadable object sends no failure record: it is stored
        FAILED and returned as Outcome.FAILED, for the job's completion report.

        Raises what fails a live invocation: ImageBusyError (another invocation's live claim of this very record)
        and the errors of the AWS calls (throttling, 5xx, access denied, ...), the claim released first
        (RETRYING, so a retry takes it again); the caller decides which are worth another try.
        """
        if not event.is_backfill:
            raise ValueError(f"a task is a backfill record ({BACKFILL_EVENT_NAME}), not {event.event_name}")
        logger.thread_safe_clear_keys()
        logger.thread_safe_append_keys(function_request_id=context.aws_request_id)
        return self._process(event, JOB_REPORT, context)

    def _process(self, event: ImageEvent, failure: FailurePolicy, context: InvocationContext) -> RecordResult:
        """`failure` says where an unreadable object's record goes: the DLQ (with what a replay sends), or, for a
        backlog task, nowhere but the job's completion report."""
        logger.thread_safe_append_keys(
            aws_calls=calls.begin_record(),  # filled as the record's calls complete; every line shows it so far
            correlation_id=event.ref.uri,
            object_key=event.ref.key,
            version_id=event.ref.version_id,
            event_name=event.event_name,
        )
        if event.is_removal:
            return self._remove(event, failure, context)
        if not event.is_creation:
            logger.warning("event type not handled", event_name=event.event_name)
            return RecordResult(event.ref.key, Outcome.SKIPPED, reason=f"event {event.event_name} not handled")
        missing: ObjectUnreadable | None = None
        if event.is_backfill:
            checked = self._check_backfill(event, failure)
            if isinstance(checked, RecordResult):
                return checked
            event, missing = checked

        now = self.clock()
        claim = self._claim(event, now, context, failure)
        if not claim.acquired and _may_be_current_again(event, claim.previous):
            # An older create meets a one-version tombstone: its version may be the current one again (a newer
            # version or a delete marker was deleted for good). A HEAD decides; only then may it take the image.
            current = self.inspector.current(event.ref)
            if current is not None and not_current(event.ref, event.etag, current) is None:
                event = event.now_current(event.ref.version_id, event.etag, event.size)
                claim = self._claim(event, now, context, failure)
        if not claim.acquired:
            return self._not_claimed(event, claim, now)
        return self._claimed(event, failure, claim, context, missing)

    def _check_backfill(
        self, event: ImageEvent, failure: FailurePolicy
    ) -> RecordResult | tuple[ImageEvent, ObjectUnreadable | None]:
        """A backfill record against the object's current version (a HEAD): its outcome when there is nothing to do
        (SKIPPED), else the record completed with that version, and for a backlog task whose object is gone, the
        error that ends it (no older version of it is read)."""
        current = self.inspector.current(event.ref)
        changed = not_current(event.ref, event.etag, current)
        missing: ObjectUnreadable | None = None
        if current is None and failure is JOB_REPORT:
            # A backlog task names an object the bucket does not have. Its removal is recorded: nothing to do.
            # Otherwise (a wrong manifest, a removal long forgotten) it is FAILED, as a live upload whose object
            # is gone.
            if self._removal_recorded(event):
                changed = "the object was deleted"
            else:
                changed = None
                missing = ObjectUnreadable(
                    "InvalidS3ObjectException",
                    "S3 has no such object (404, or 403 to a role without s3:ListBucket)",
                )
        if changed:
            logger.info("backfill record skipped", reason=changed)
            self.metrics.add_metric(name=Metric.SKIPPED, unit=MetricUnit.Count, value=1)
            return RecordResult(event.ref.key, Outcome.SKIPPED, reason=f"backfill: {changed}")
        if current is not None:
            # What the record lacks (a task has no ETag, maybe no version) is the version just checked.
            event = event.with_current(current.pinned_version, current.etag, current.size, current.modified)
            logger.thread_safe_append_keys(version_id=event.ref.version_id)
        return event, missing

    def _claim(self, event: ImageEvent, now: datetime, context: InvocationContext, failure: FailurePolicy) -> Claim:
        return self.claims.claim(
            event,
            self.new_token(),
            now,
            lease_seconds=self.settings.claim_lease_seconds,
            redrive=isinstance(failure, DeadLetter) and bool(failure.redrive),
            request_id=context.aws_request_id,
        )

    def _not_claimed(self, event: ImageEvent, claim: Claim, now: datetime) -> RecordResult:
        stored = claim.previous
        if _held_by_another_live_claim(event, stored, now):
            raise ImageBusyError(
                f"{event.ref.uri}: the image is being processed by another invocation"
                f" (claim lease until {stored.get('lease_expires')}); failing so that it is retried"
            )
        reason = _skip_reason(event, stored)
        logger.info("event skipped", reason=reason, stored_status=stored.get("status"))
        self.metrics.add_metric(name=Metric.SKIPPED, unit=MetricUnit.Count, value=1)
        return RecordResult(event.ref.key, Outcome.SKIPPED, reason=reason)

    def _claimed(
        self,
        event: ImageEvent,
        failure: FailurePolicy,
        claim: Claim,
        context: InvocationContext,
        missing: ObjectUnreadable | None = None,
    ) -> RecordResult:
        try:
            return self._analyse(event, failure, claim, context, missing)
        except Exception as exc:
            reason = f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}"
            try:
                self.claims.mark_retrying(event, claim, reason)
            except Exception:
                # The claim stays PROCESSING until its lease ends; Lambda's retry (same request id) retakes it.
                logger.exception("could not mark the claim RETRYING")
            raise

    def _analyse(
        self,
        event: ImageEvent,
        failure: FailurePolicy,
        claim: Claim,
        context: InvocationContext,
        missing: ObjectUnreadable | None = None,
    ) -> RecordResult:
        try:
            if missing is not None:
                raise missing
            if event.region and event.region != self.rekognition.region:
                raise ObjectUnreadable(
                    "InvalidS3ObjectException",
                    f"bucket is in {event.region} but Rekognition is called in {self.rekognition.region};"
                    " Rekognition reads S3 objects only in its own region",
                )
            self.inspector.inspect(event.ref, event.size)
            faces = self.rekognition.detect(
                event.ref,
                self.settings.face_attributes,
                remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000.0,
            )
        except ImageRejected as rejected:
            return self._rejected(event, claim, rejected)
        except ObjectUnreadable as unreadable:
            return self._unreadable(event, failure, claim, unreadable, context)

        if not self.claims.store_detected(event, claim, faces, self.settings.face_attributes, self.clock()):
            return self._superseded(event)
        logger.info("faces stored", faces=len(faces))
        self.metrics.add_metric(name=Metric.DETECTED, unit=MetricUnit.Count, value=1)
        self.metrics.add_metric(name=Metric.FACES, unit=MetricUnit.Count, value=len(faces))
        return RecordResult(event.ref.key, Outcome.DETECTED, faces=len(faces))

    def _rejected(self, event: ImageEvent, claim: Claim, rejected: ImageRejected) -> RecordResult:
        """The image can never be analysed: REJECTED, with the reason."""
        if not self.claims.store_rejected(event, claim, f"{rejected.code}: {rejected.message}", self.clock()):
            return self._superseded(event)
        logger.info("image rejected", reason_code=rejected.code, reason=rejected.message)
        self.metrics.add_metric(name=Metric.REJECTED, unit=MetricUnit.Count, value=1)
        return RecordResult(event.ref.key, Outcome.REJECTED, reason=rejected.code, detail=str(rejected))

    def _unreadable(
        self,
        event: ImageEvent,
        failure: FailurePolicy,
        claim: Claim,
        unreadable: ObjectUnreadable,
        context: InvocationContext,
    ) -> RecordResult:
        """The object cannot be read: a failure record to the DLQ (DEAD_LETTERED), or for a backlog task, whose
        job's completion report is the record, TASK_FAILED."""
        if not isinstance(failure, DeadLetter):
            if not self.claims.store_task_failed(event, claim, str(unreadable), self.clock()):
                return self._superseded(event)
            logger.warning("object unreadable", error_type=unreadable.code, reason=unreadable.message)
            return RecordResult(event.ref.key, Outcome.FAILED, reason=unreadable.code, detail=str(unreadable))
        message_id = self._send_failure(failure, event.ref, unreadable.code, unreadable.message, context)
        self.claims.store_dead_lettered(event, claim, f"{unreadable.code}: {unreadable.message}", self.clock())
        logger.warning(
            "sent to dead-letter queue",
            error_type=unreadable.code,
            reason=unreadable.message,
            message_id=message_id,
        )
        self.metrics.add_metric(name=Metric.DEAD_LETTERED, unit=MetricUnit.Count, value=1)
        return RecordResult(event.ref.key, Outcome.DEAD_LETTERED, reason=unreadable.code)

    def _dead_letter_malformed(
        self, failure: DeadLetter, exc: InvalidEventError, context: InvocationContext
    ) -> RecordResult:
        """`failure.payload` is what a replay would send: the malformed S3 record in an event, or the EventBridge
        event."""
        payload, redrive = failure.payload, failure.redrive
        import hashlib  # the malformed-record path only

        fingerprint = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        # Once per record: when another record of the event fails, Lambda retries the whole event.
        # A redrive is an operator's explicit replay: it dead-letters again.
        first = redrive or self.claims.note_malformed(
            fingerprint, str(exc), self.clock(), self.settings.tombstone_ttl_seconds
        )
        if not first:
            logger.info("malformed record already dead-lettered", reason=str(exc))
            return RecordResult("<malformed record>", Outcome.SKIPPED, reason="malformed record already dead-lettered")
        try:
            self._send_failure(failure, None, "InvalidEventError", str(exc), context)
        except Exception:
            if not redrive:
                self.claims.forget_malformed(fingerprint)
            raise
        logger.warning("malformed record sent to dead-letter queue", reason=str(exc))
        self.metrics.add_metric(name=Metric.DEAD_LETTERED, unit=MetricUnit.Count, value=1)
        return RecordResult("<malformed record>", Outcome.DEAD_LETTERED, reason="InvalidEventError")

    def _send_failure(
        self, failure: DeadLetter, ref: ObjectRef | None, error_type: str, message: str, context: InvocationContext
    ) -> str:
        """One failure record to the DLQ, in the shape of Lambda's on-failure destination record."""
        redrive = failure.redrive
        record = failure_record(
            # A replayed event keeps its redrive mark, so the redrive run can tell the records it caused.
            {**failure.payload, REDRIVE_FLAG: redrive} if redrive else failure.payload,
            error_type=error_type,
            error_message=message,
            request_id=context.aws_request_id,
            function_arn=context.invoked_function_arn,
            function_version=getattr(context, "function_version", "$LATEST"),
            now=self.clock(),
        )
        return self.dead_letters.send(record, ref=ref)

    def _removal_recorded(self, event: ImageEvent) -> bool:
        """The results table records the object's removal: a tombstone, or this very version deleted for good."""
        stored = self.claims.results.summary(event.ref.bucket, event.ref.key) or {}
        if stored.get("status") == Status.DELETED:
            return True
        version = event.ref.version_key
        return version is not None and version in (stored.get("removed_versions") or set())

    def _superseded(self, event: ImageEvent) -> RecordResult:
        logger.info("result discarded: a newer event took the image while this one was processed")
        self.metrics.add_metric(name=Metric.SKIPPED, unit=MetricUnit.Count, value=1)
        return RecordResult(event.ref.key, Outcome.SKIPPED, reason="superseded by a newer event")

    def _remove(self, event: ImageEvent, failure: FailurePolicy, context: InvocationContext) -> RecordResult:
        if self.claims.remove(event, self.clock(), self.settings.tombstone_ttl_seconds):
            logger.info("results deleted")
            self.metrics.add_metric(name=Metric.DELETED, unit=MetricUnit.Count, value=1)
            result = RecordResult(event.ref.key, Outcome.DELETED)
        else:
            if event.removes_one_version:
                reason = "removal of another version: the stored result is kept"
            else:
                reason = "removal older than stored result"
            logger.info("removal skipped", reason=reason)
            self.metrics.add_metric(name=Metric.SKIPPED, unit=MetricUnit.Count, value=1)
            result = RecordResult(event.ref.key, Outcome.SKIPPED, reason=reason)
        if event.removes_one_version:
            then = self._current_again(event, failure, context)
            if then is not None:
                return replace(result, then=then)
        return result

    def _current_again(
        self, removal: ImageEvent, failure: FailurePolicy, context: InvocationContext
    ) -> RecordResult | None:
        """After a version was deleted for good, the version S3 now shows current (an older one, after a rollback
        or an undelete) gets its result: S3 sends no event for it (docs/DESIGN.md, "Versions current again").
        One HEAD; nothing more when that version already has its result or the key has no current version."""
        current = self.inspector.current(ObjectRef(removal.ref.bucket, removal.ref.key))
        if current is None:
            return None
        event = removal.now_current(current.pinned_version, current.etag, current.size)
        logger.thread_safe_append_keys(version_id=event.ref.version_id, event_name=event.event_name)
        now = self.clock()
        claim = self._claim(event, now, context, failure)
        if not claim.acquired:
            if _held_by_another_live_claim(event, claim.previous, now):
                self._not_claimed(event, claim, now)  # raises: the removal's retry comes back for this version
            logger.info("current version already has its result", stored_status=claim.previous.get("status"))
            return None
        return self._claimed(event, failure, claim, context)


def _may_be_current_again(event: ImageEvent, stored: dict[str, Any]) -> bool:
    """A create that lost its claim to a one-version tombstone (a newer version, or a delete marker, deleted for
    good) may be about the version that is current again; not when its own version was deleted for good."""
    if event.claims_as_current or not event.is_creation:
        return False
    if stored.get("status") != Status.DELETED or stored.get("removed_scope") != SCOPE_VERSION:
        return False
    return event.ref.version_key is None or event.ref.version_key not in (stored.get("removed_versions") or set())


def _held_by_another_live_claim(event: ImageEvent, stored: dict[str, Any], now: datetime) -> bool:
    """The claim that blocked `event` is another invocation's, still live: of this very event, or, for a record
    checked current (it takes any claim that was released or ran out), of any event of the key."""
    return (
        stored.get("status") == Status.PROCESSING
        and (event.claims_as_current or str(stored.get("sequencer", "")) == event.sequencer)
        and int(stored.get("lease_expires") or 0) >= int(now.timestamp())
    )


def _skip_reason(event: ImageEvent, stored: dict[str, Any]) -> str:
    """Why an event that could not claim the image has nothing to do, given what blocked it (`stored`)."""
    stored_seq = str(stored.get("sequencer", ""))
    status = stored.get("status")
    version = event.ref.version_key
    if version and version in (stored.get("removed_versions") or set()):
        return "stale: this version was deleted"
    if event.claims_as_current:
        return _checked_skip_reason(event, status)
    if status == Status.DELETED and stored.get("removed_scope") == SCOPE_VERSION:
        return "stale: this version is not the current one"
    if stored_seq > event.sequencer:
        return f"stale: a newer event is stored ({status})"
    if status == Status.PROCESSING:
        return "duplicate: the same event is being processed"
    return f"duplicate: already {status}"


def _checked_skip_reason(event: ImageEvent, status: object) -> str:
    """_skip_reason for a record checked current (a backfill record, a version current again)."""
    what = "backfill" if event.is_backfill else "current again"
    if status in (Status.DETECTED, Status.REJECTED):
        return f"{what}: already {status} for this version"
    return f"{what}: another event holds the image ({status})"


@dataclass(frozen=True)
class _Delivery:
    """One object's event as it came: an S3 notification record, or an EventBridge event."""

    raw: Any
    eventbridge: bool

    def parse(self) -> ImageEvent:
        return ImageEvent.from_eventbridge(self.raw) if self.eventbridge else ImageEvent.from_record(self.raw)

    @property
    def payload(self) -> dict[str, Any]:
        """What a replay of this one object sends: the record in an S3 event, or the EventBridge event (the
        redrive mark is added when the failure record is written)."""
        if self.eventbridge:
            return {k: v for k, v in self.raw.items() if k != REDRIVE_FLAG}
        return {"Records": [self.raw if isinstance(self.raw, dict) else {"record": self.raw}]}

    def key(self) -> str:
        try:
            return str(self.parse().ref.key)
        except Exception:  # noqa: BLE001
            return "<unparseable record>"


def _deliveries(event: dict[str, Any]) -> list[_Delivery]:
    """Each object the event is about: one per S3 record, or the one EventBridge event (docs/DESIGN.md)."""
    if is_eventbridge_s3(event):
        return [_Delivery(event, eventbridge=True)]
    records = event.get("Records")
    if not isinstance(records, list):
        raise InvalidEventError("event has no Records list; is this an S3 notification?")
    return [_Delivery(raw, eventbridge=False) for raw in records]
