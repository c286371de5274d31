"""What the function is subscribed to, as the stack (infra/delivery.py) and local mode both set it up: the
same events, buckets and prefixes whichever delivery carries them (docs/CONFIGURATION.md)."""

from __future__ import annotations

from typing import Any

# Every object-created kind (PUT, POST, COPY, multipart) and every removal, with no suffix filter: S3's filters
# are case-sensitive (".JPG" would be missed), so the function decides by the object's bytes.
NOTIFICATION_EVENTS = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")
EVENTBRIDGE_SOURCE = "aws.s3"
EVENTBRIDGE_DETAIL_TYPES = ("Object Created", "Object Deleted")


def eventbridge_pattern(buckets: list[str], prefixes: tuple[str, ...]) -> dict[str, Any]:
    """The rule's event pattern: the buckets' Object Created / Object Deleted events under any of the prefixes
    (all keys when there are none, or when one of them is empty)."""
    detail: dict[str, Any] = {"bucket": {"name": list(buckets)}}
    if prefixes and all(prefixes):
        detail["object"] = {"key": [{"prefix": p} for p in prefixes]}
    return {"source": [EVENTBRIDGE_SOURCE], "detail-type": list(EVENTBRIDGE_DETAIL_TYPES), "detail": detail}
