"""Make moto behave like AWS where the function relies on it, for the local pipeline (moto 5.2.5, pinned).

S3 notifications: moto's events carry neither `versionId` nor `sequencer`, and in a versioned bucket a
plain DELETE (a delete marker) sends no event at all, while deleting a version sends one only when the
last version goes. Local mode patches moto, once per process:

- every event gets the object's `versionId` (versioned buckets) and a `sequencer` that increases with
  every event, as S3's do per key;
- DeleteObject sends `ObjectRemoved:DeleteMarkerCreated` (versioned, no version id) or
  `ObjectRemoved:Delete` (a version, or an unversioned object), with the version id S3 would send.

DynamoDB: moto applies an UpdateItem's actions one by one on the live item, so a concurrent conditional
write can see half of another (an item with `status` set but no `sequencer` yet). DynamoDB makes every
single-item write atomic; local mode serialises moto's item operations to match. The fault rehearsal
found this: a removal evaluated its condition against a claim in mid-write.
"""

from __future__ import annotations

import itertools
import threading
from types import SimpleNamespace
from typing import Any

_lock = threading.Lock()
_installed = False
_sequencer = itertools.count(1)


def next_sequencer() -> str:
    with _lock:
        return format(next(_sequencer), "016X")


def install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    from moto.s3 import models, notifications

    original_event = notifications._get_s3_event
    original_send = notifications.send_event
    original_delete = models.S3Backend.delete_object
    removed = (
        notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_EVENT,
        notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT,
    )
    local = threading.local()

    def get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event: dict[str, Any] = original_event(event_name, bucket, key, notification_id)
        obj = event["Records"][0]["s3"]["object"]
        version = getattr(key, "version_id", None)
        if getattr(bucket, "is_versioned", False) and version and version != "null":
            obj["versionId"] = str(version)
        obj["sequencer"] = next_sequencer()
        if event_name in removed:
            obj.pop("size", None)
            obj.pop("eTag", None)
        return event

    def send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        if event_name in removed and not getattr(local, "ours", False):
            return  # moto's own removal events are wrong for versioned buckets; delete_object sends ours
        original_send(account_id, event_name, bucket, key)

    def delete_object(
        self: Any, bucket_name: str, key_name: str, version_id: str | None = None, bypass: bool = False
    ) -> tuple[bool, dict[str, Any]]:
        bucket = self.get_bucket(bucket_name)
        existed = key_name in bucket.keys
        ok, meta = original_delete(self, bucket_name, key_name, version_id, bypass)
        if ok and existed:
            if bucket.is_versioned and version_id is None:
                name = notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT
            else:
                name = notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_EVENT
            key = SimpleNamespace(name=key_name, etag="", size=0, version_id=meta.get("version-id"))
            local.ours = True
            try:
                notifications.send_event(self.account_id, name, bucket, key)
            finally:
                local.ours = False
        return ok, meta

    _serialise_dynamodb()

    notifications._get_s3_event = get_s3_event
    notifications.send_event = send_event
    models.S3Backend.delete_object = delete_object  # type: ignore[method-assign]


def _serialise_dynamodb() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    item_lock = threading.RLock()

    def atomic(method: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with item_lock:
                return method(*args, **kwargs)

        wrapper.__wrapped__ = method  # type: ignore[attr-defined]
        return wrapper

    for name in ("put_item", "get_item", "update_item", "delete_item", "query", "scan", "transact_write_items",
                 "batch_write_item"):  # fmt: skip
        setattr(DynamoDBBackend, name, atomic(getattr(DynamoDBBackend, name)))
