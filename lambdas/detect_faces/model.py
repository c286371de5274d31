"""Plain domain types: what an S3 record means, and what became of it."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from .contract import BACKFILL_EVENT_NAME, BACKFILL_SEQUENCER, CURRENT_AGAIN_EVENT_NAME

# Rekognition limits (https://docs.aws.amazon.com/rekognition/latest/dg/limits.html)
MAX_S3_OBJECT_BYTES = 15 * 1024 * 1024
MIN_IMAGE_PIXELS = 80
MAX_SIZE_DIGITS = 20  # S3's largest object (5 TiB) has 13 digits
SEQUENCER_WIDTH = 40
# How many hex digits S3 notification records carry ("0055AED6DCD90281E5"); EventBridge may drop the leading zeros.
NOTIFICATION_SEQUENCER_DIGITS = 18
# S3's version id of an object written while the bucket was unversioned or versioning was suspended.
NULL_VERSION = "null"
# What each delivery calls the version id and the ETag of the object.
NOTIFICATION = ("versionId", "eTag")
EVENTBRIDGE = ("version-id", "etag")


def utc_iso(moment: datetime | None = None) -> str:
    """A UTC timestamp as AWS writes them: 2026-11-28T12:00:00.000Z (now, when no moment is given)."""
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Outcome(enum.StrEnum):
    DETECTED = "detected"
    REJECTED = "rejected"
    DEAD_LETTERED = "dead_lettered"
    DELETED = "deleted"
    SKIPPED = "skipped"  # duplicate, stale (older than what is stored) or not an object event
    FAILED = "failed"  # a backlog task's object is unreadable: FAILED in the table, no DLQ (its job reports it)


class InvalidEventError(ValueError):
    """The event is not an S3 notification this function understands."""


_HEX = re.compile(r"[0-9A-Fa-f]+")


def normalize_sequencer(sequencer: str | None, *, eventbridge: bool = False) -> str:
    """An S3 sequencer in a form that orders events of one key by plain string comparison.

    The S3 user guide ("Event message structure"): "The sequencers can be of different lengths. To compare
    these values, first right pad the shorter value with zeros, and then do a lexicographical comparison."
    So: upper case, right-padded with zeros to SEQUENCER_WIDTH (a longer value loses only trailing zeros,
    which do not change its rank). Only hex digits are accepted; a missing sequencer is the lowest, "0".

    EventBridge writes the same value in two forms: the notification's 18 digits ("00617F08299329D189"), or the
    same number without its leading zeros ("617f08299329d189", the user guide's EventBridge example). With
    `eventbridge`, a value shorter than NOTIFICATION_SEQUENCER_DIGITS gets its leading zeros back first, so both
    forms of one moment are one event (docs/DESIGN.md, "The sequencer rule").
    """
    value = BACKFILL_SEQUENCER if sequencer is None else sequencer
    if not isinstance(value, str) or not _HEX.fullmatch(value) or not value.isascii():
        raise InvalidEventError(f"sequencer {sequencer!r} is not a hexadecimal string")
    value = value.upper()
    if eventbridge and sequencer is not None:
        value = value.rjust(NOTIFICATION_SEQUENCER_DIGITS, "0")
    if len(value) > SEQUENCER_WIDTH:
        value = value.rstrip("0")
    return value.ljust(SEQUENCER_WIDTH, "0")


def is_eventbridge_s3(event: object) -> bool:
    return isinstance(event, dict) and event.get("source") == "aws.s3" and "detail-type" in event


def _eventbridge_name(kind: str, reason: str, deletion_type: str) -> str:
    if kind == "Object Created":
        return f"ObjectCreated:{reason or 'Put'}"
    if kind == "Object Deleted":
        suffix = "DeleteMarkerCreated" if deletion_type == "Delete Marker Created" else "Delete"
        prefix = "LifecycleExpiration" if reason == "Lifecycle Expiration" else "ObjectRemoved"
        return f"{prefix}:{suffix}"
    return kind.replace(" ", "")  # Object Restore Completed, Object Tags Added, ...: not handled


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidEventError(f"{what} {value!r} is not a non-empty string")
    return value


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidEventError(f"{where} is not an object: {value!r:.80}")
    return value


def _object_size(value: object) -> int | None:
    """S3's `size`: a non-negative integer (or absent, as in removal events)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidEventError(f"object size {value!r} is not a whole number of bytes")
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise InvalidEventError(f"object size {value!r} is not a whole number of bytes")
    if isinstance(value, str) and len(value) > MAX_SIZE_DIGITS:  # int() refuses past 4,300 digits anyway
        raise InvalidEventError(f"object size {value[:20]}... ({len(value)} digits) is not a size S3 stores")
    size = int(value)
    if size < 0:
        raise InvalidEventError(f"object size {value!r} is negative")
    return size


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    version_id: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def version_key(self) -> str | None:
        """The version as the results table names it: None for no version and for S3's "null" version alike (an
        object written before versioning, or while it was suspended, is listed as "null" and announced without
        one), so the two spellings of one version always compare equal."""
        return version_key(self.version_id)


def version_key(version_id: str | None) -> str | None:
    """A version id as the results table stores and compares it: None for absent, "" and "null"."""
    return version_id if version_id and version_id != NULL_VERSION else None


@dataclass(frozen=True)
class ImageEvent:
    """One S3 notification record, decoded."""

    ref: ObjectRef
    event_name: str
    event_time: str
    region: str
    size: int | None
    etag: str | None
    sequencer: str
    # A HEAD showed this version to be the object's current one (docs/DESIGN.md, "Versions current again"): its
    # claim may take an image whose stored sequencer is newer, and keeps that sequencer.
    current_checked: bool = False

    @property
    def is_removal(self) -> bool:
        return self.event_name.startswith(("ObjectRemoved", "LifecycleExpiration"))

    @property
    def removes_one_version(self) -> bool:
        """A version deleted for good (DeleteObject with a VersionId, or a noncurrent version expiring).

        It outranks only that version's events; a delete marker or an unversioned delete removes the object.
        """
        return self.is_removal and self.event_name.endswith(":Delete") and self.ref.version_id is not None

    @property
    def is_backfill(self) -> bool:
        return self.event_name == BACKFILL_EVENT_NAME

    @property
    def is_creation(self) -> bool:
        return self.event_name.startswith("ObjectCreated")

    @property
    def claims_as_current(self) -> bool:
        """A record whose version was (or, for a backfill record, will be) checked current by a HEAD before its
        claim: a backfill record, or an event that a HEAD showed to be about the current version again."""
        return self.is_backfill or self.current_checked

    def now_current(self, version_id: str | None, etag: str | None, size: int | None) -> ImageEvent:
        """The record for the version a HEAD just showed current, after this event: this very create event (an
        older event whose version is current again), or, after a removal that left an older version current,
        that version under CURRENT_AGAIN_EVENT_NAME with the removal's sequencer and time."""
        if self.is_creation:
            return replace(self, current_checked=True)
        return replace(
            self,
            ref=replace(self.ref, version_id=version_id),
            event_name=CURRENT_AGAIN_EVENT_NAME,
            etag=etag,
            size=size,
            current_checked=True,
        )

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ImageEvent:
        """Read an S3 notification record (the S3 user guide's "Event message structure"), checking every
        field the function relies on. Plain dict access: Powertools' data classes package would import some
        forty event types at cold start for this one (docs/DESIGN.md, "Cold start, tracing and what a
        record's calls cost")."""
        try:
            s3 = _mapping(_mapping(record, "record")["s3"], "s3")
            obj = _mapping(s3["object"], "s3.object")
            event_name = _text(record["eventName"], "eventName")
            # Keys arrive URL-encoded ("a b+c.jpg" -> "a+b%2Bc.jpg"); decode exactly once, here.
            key = unquote_plus(_text(obj["key"], "object key"))
            what = (event_name.removeprefix("s3:"), record.get("eventTime"), record.get("awsRegion"))
            return cls._checked(_mapping(s3["bucket"], "s3.bucket")["name"], key, obj, NOTIFICATION, what)
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidEventError(f"S3 record is missing {exc}") from None

    @classmethod
    def backfill(cls, bucket: object, key: object, version_id: object = None) -> ImageEvent:
        """A backfill record for one object an operator's job names (a backlog task, backlog.py): sequencer 0,
        so every real event of the key outranks it. The key is given decoded. No version id (None, "", or S3's
        "null" for an object written before versioning) means the object's current version. The ETag, size and
        time are learnt from the object when the record runs (`with_current`)."""
        if version_id is not None and not isinstance(version_id, str):
            raise InvalidEventError(f"version id {version_id!r} is not a string")
        return cls(
            ref=ObjectRef(
                bucket=_text(bucket, "bucket name"),
                key=_text(key, "object key"),
                version_id=version_key(version_id),
            ),
            event_name=BACKFILL_EVENT_NAME,
            event_time="",
            region="",
            size=None,
            etag=None,
            sequencer=normalize_sequencer(BACKFILL_SEQUENCER),
        )

    def with_current(
        self, version_id: str | None, etag: str | None, size: int | None, modified: datetime | None
    ) -> ImageEvent:
        """This backfill record with what it lacks taken from the object's current version (a HEAD): a record
        with no version id then names the version it checked, so DetectFaces and the result are that version's."""
        return replace(
            self,
            ref=replace(self.ref, version_id=self.ref.version_id or version_id),
            etag=self.etag or etag,
            size=self.size if self.size is not None else size,
            event_time=self.event_time or (utc_iso(modified) if modified else ""),
        )

    @classmethod
    def from_eventbridge(cls, event: dict[str, Any]) -> ImageEvent:
        """Read an S3 event delivered by EventBridge (source aws.s3): one event is one object, the key is not
        URL-encoded, and the fields are `etag`, `version-id`, `sequencer`; `detail-type` and, for deletions,
        `reason` and `deletion-type` say what happened. Mapped onto the notification's event names, so the same
        core handles both: Object Created -> ObjectCreated:<reason>; Object Deleted -> ObjectRemoved:Delete or
        :DeleteMarkerCreated (LifecycleExpiration:* for a lifecycle expiry); anything else is not handled."""
        try:
            detail = _mapping(event["detail"], "detail")
            kind = _text(event["detail-type"], "detail-type")
            obj = _mapping(detail["object"], "detail.object")
            key = _text(obj["key"], "object key")  # not URL-encoded in EventBridge events
            name = _eventbridge_name(kind, str(detail.get("reason") or ""), str(detail.get("deletion-type") or ""))
            what = (name, event.get("time"), event.get("region"))
            return cls._checked(_mapping(detail["bucket"], "detail.bucket")["name"], key, obj, EVENTBRIDGE, what)
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidEventError(f"EventBridge S3 event is missing {exc}") from None

    @classmethod
    def _checked(
        cls,
        bucket: object,
        key: str,
        obj: dict[str, Any],
        names: tuple[str, str],
        what: tuple[str, object, object],
    ) -> ImageEvent:
        """The fields both deliveries share, each checked: bucket, version id and ETag (named per delivery,
        `names`), size and sequencer; `what` is the event name, time and region."""
        version_field, etag_field = names
        version_id = obj.get(version_field)
        if version_id is not None and not isinstance(version_id, str):
            raise InvalidEventError(f"{version_field} {version_id!r} is not a string")
        etag = obj.get(etag_field)
        event_name, event_time, region = what
        return cls(
            ref=ObjectRef(bucket=_text(bucket, "bucket name"), key=key, version_id=version_id or None),
            event_name=event_name,
            event_time=str(event_time or ""),
            region=str(region or ""),
            size=_object_size(obj.get("size")),
            etag=str(etag) if etag else None,
            sequencer=normalize_sequencer(obj.get("sequencer"), eventbridge=names == EVENTBRIDGE),
        )


@dataclass(frozen=True)
class RecordResult:
    key: str
    outcome: Outcome
    reason: str | None = None
    faces: int | None = None
    # The whole reason ("code: message") where `reason` is a code; for a backlog task's completion report.
    detail: str | None = None
    # What a removal went on to do: the outcome of the version it left current (docs/DESIGN.md).
    then: RecordResult | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "outcome": self.outcome.value}
        if self.reason is not None:
            data["reason"] = self.reason
        if self.faces is not None:
            data["faces"] = self.faces
        if self.then is not None:
            data["then"] = self.then.as_dict()
        return data
