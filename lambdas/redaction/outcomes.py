"""The outcome event the redaction function is invoked with, read and checked, and the order of outcomes of one
image (docs/DESIGN.md, "Outcome events": per `pk`, the outcome with the highest (`sequencer`, `finished_at`) is
the current one)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from detect_faces.contract import OUTCOME_EVENT_SOURCE, REDRIVE_FLAG, OutcomeEvent

# What schemas/outcome-event-detail.schema.json promises of a sequencer: upper case, right-padded to 40 hex digits.
SEQUENCER = re.compile(r"[0-9A-F]{40}")
NULL_VERSION = "null"  # S3's version id of an object written while its bucket was unversioned


class InvalidOutcomeEvent(ValueError):
    """The event is not a facepipe outcome event this function understands: it is dead-lettered as it is."""

    code = "InvalidOutcomeEvent"


@dataclass(frozen=True, order=True)
class Stamp:
    """Where an outcome stands among the outcomes of its image: ordered by sequencer, then by finished_at (an
    outcome under the same sequencer, such as the version a removal left current, is later by finished_at). Both
    compare as plain strings: sequencers are normalized to 40 upper-case hex digits, times are ISO 8601 UTC with
    milliseconds. A copy that carries none (written by something else) is the lowest: `Stamp("", "")`."""

    sequencer: str
    finished_at: str

    def __str__(self) -> str:
        return f"{self.sequencer}@{self.finished_at}"


@dataclass(frozen=True)
class Outcome:
    """One outcome of one image, as the event announces it."""

    detail_type: OutcomeEvent
    bucket: str
    key: str
    version_id: str | None  # None for an unversioned object (and S3's "null" version)
    etag: str | None
    stamp: Stamp
    status: str
    face_count: int
    redrive: Any  # the redrive run that replayed this event (`facepipe redrive`), or None

    @property
    def pk(self) -> str:
        return f"{self.bucket}/{self.key}"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def sequencer(self) -> str:
        return self.stamp.sequencer


def _text(detail: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = detail.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or (not value and not optional):
        raise InvalidOutcomeEvent(f"detail.{name} is {value!r:.80}, not a non-empty string")
    return value or None


def parse(event: Any) -> Outcome:
    """The outcome an EventBridge event announces (source `facepipe`, one of the four detail-types, the detail of
    schemas/outcome-event-detail.schema.json), every field this function relies on checked."""
    if not isinstance(event, dict) or event.get("source") != OUTCOME_EVENT_SOURCE:
        raise InvalidOutcomeEvent(f"not a {OUTCOME_EVENT_SOURCE!r} outcome event: source is {_source(event)!r:.80}")
    try:
        detail_type = OutcomeEvent(str(event.get("detail-type")))
    except ValueError:
        raise InvalidOutcomeEvent(f"detail-type {event.get('detail-type')!r:.80} is not an outcome") from None
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise InvalidOutcomeEvent(f"detail is {detail!r:.80}, not an object")
    bucket, key = _text(detail, "bucket"), _text(detail, "key")
    sequencer = _text(detail, "sequencer")
    if not SEQUENCER.fullmatch(str(sequencer)):
        raise InvalidOutcomeEvent(f"detail.sequencer {sequencer!r:.80} is not 40 upper-case hex digits")
    pk = detail.get("pk")
    if pk is not None and pk != f"{bucket}/{key}":
        raise InvalidOutcomeEvent(f"detail.pk {pk!r:.80} is not detail.bucket/detail.key")
    face_count = detail.get("face_count") or 0
    if isinstance(face_count, bool) or not isinstance(face_count, int) or face_count < 0:
        raise InvalidOutcomeEvent(f"detail.face_count {face_count!r:.80} is not a count")
    version_id = _text(detail, "version_id", optional=True)
    return Outcome(
        detail_type=detail_type,
        bucket=str(bucket),
        key=str(key),
        version_id=None if version_id == NULL_VERSION else version_id,
        etag=_text(detail, "etag", optional=True),
        stamp=Stamp(str(sequencer), _text(detail, "finished_at", optional=True) or ""),
        status=str(detail.get("status") or ""),
        face_count=face_count,
        redrive=event.get(REDRIVE_FLAG) or None,
    )


def _source(event: Any) -> Any:
    return event.get("source") if isinstance(event, dict) else type(event).__name__
