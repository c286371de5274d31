"""Plain domain types: what an S3 record means, and what became of it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord

# Rekognition limits (https://docs.aws.amazon.com/rekognition/latest/dg/limits.html)
MAX_S3_OBJECT_BYTES = 15 * 1024 * 1024
MIN_IMAGE_PIXELS = 80
SEQUENCER_WIDTH = 40


class Status(enum.StrEnum):
    PROCESSING = "PROCESSING"  # claimed by an invocation that is working on it
    DETECTED = "DETECTED"  # DetectFaces succeeded; face_count may be 0
    REJECTED = "REJECTED"  # the object can never be analysed (format, size, corrupt); not retried
    FAILED = "FAILED"  # sent to the DLQ by the function (object unreadable); redrive to retry
    RETRYING = "RETRYING"  # the invocation failed; Lambda retries, then its on-failure destination (DLQ)
    DELETED = "DELETED"  # tombstone: the object was removed, its face data deleted


class Outcome(enum.StrEnum):
    DETECTED = "detected"
    REJECTED = "rejected"
    DEAD_LETTERED = "dead_lettered"
    DELETED = "deleted"
    SKIPPED = "skipped"  # duplicate, stale (older than what is stored) or not an object event


class InvalidEventError(ValueError):
    """The event is not an S3 notification this function understands."""


def normalize_sequencer(sequencer: str | None) -> str:
    """S3 sequencers of one key compare as hex after left-padding with zeros to the same length."""
    value = (sequencer or "0").strip().upper()
    try:
        int(value, 16)
    except ValueError:
        raise InvalidEventError(f"sequencer {sequencer!r} is not hexadecimal") from None
    return value.zfill(SEQUENCER_WIDTH)


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    version_id: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


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
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def is_removal(self) -> bool:
        return self.event_name.startswith("ObjectRemoved")

    @property
    def is_creation(self) -> bool:
        return self.event_name.startswith("ObjectCreated")

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ImageEvent:
        parsed = S3EventRecord(record)  # Powertools' S3 event data class
        try:
            obj = parsed.s3.get_object
            bucket = parsed.s3.bucket.name
            raw_key = obj.key
            event_name = parsed.event_name
            size = obj.get("size")
            return cls(
                # Keys arrive URL-encoded ("a b+c.jpg" -> "a+b%2Bc.jpg"); decode exactly once, here.
                ref=ObjectRef(bucket=bucket, key=unquote_plus(raw_key), version_id=obj.version_id or None),
                event_name=event_name.removeprefix("s3:"),
                event_time=str(parsed.get("eventTime") or ""),
                region=str(parsed.get("awsRegion") or ""),
                size=int(size) if size is not None else None,
                etag=obj.etag or None,
                sequencer=normalize_sequencer(obj.get("sequencer")),
                raw=record,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidEventError(f"S3 record is missing {exc}") from None


@dataclass(frozen=True)
class RecordResult:
    key: str
    outcome: Outcome
    reason: str | None = None
    faces: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "outcome": self.outcome.value}
        if self.reason is not None:
            data["reason"] = self.reason
        if self.faces is not None:
            data["faces"] = self.faces
        return data
