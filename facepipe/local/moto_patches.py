"""Make moto behave like AWS where the function relies on it, for the local pipeline (moto 5.2.5, pinned).

S3 notifications: moto's events carry neither `versionId` nor `sequencer`, and in a versioned bucket a
plain DELETE (a delete marker) sends no event at all, while deleting a version sends one only when the
last version goes. Local mode patches moto, once per process:

- every event gets the object's `versionId` (versioned buckets) and a `sequencer` that increases with
  every event, as S3's do per key;
- DeleteObject sends `ObjectRemoved:DeleteMarkerCreated` (versioned, no version id) or
  `ObjectRemoved:Delete` (a version, or an unversioned object), with the version id S3 would send.

moto runs no lifecycle rules. `expire` does to a key what an expiration rule does to its current version (a delete
marker in a versioned bucket, the object deleted for good otherwise) and sends the events S3 sends for it:
`LifecycleExpiration:DeleteMarkerCreated` / `LifecycleExpiration:Delete`, never `ObjectRemoved:*` (S3 user guide:
"You will not receive event notifications from automatic deletes from lifecycle policies"), and to EventBridge an
Object Deleted with reason "Lifecycle Expiration".

EventBridge (a bucket with EventBridge notifications on): moto's S3 events carry a fixed sequencer, the
notification's event name as `reason`, and no `deletion-type`. Local mode sends them as S3 does:
the same increasing sequencer as the notifications, `reason` PutObject/CopyObject/.../DeleteObject,
`deletion-type` for deletions, `version-id` only in versioned buckets.

moto's GetBucketNotificationConfiguration leaves out `EventBridgeConfiguration`; S3 returns it, and CDK's
notification handler relies on it to keep EventBridge on for other consumers. Local mode returns it.

Key name filters: S3 matches a notification filter against the key as its events carry it, URL-encoded (the S3 user
guide: "If your prefix or suffix contains a space, you must replace it with the "+" character. If you use any other
special characters in the value of the prefix or suffix, you must enter them in URL-encoded (percent-encoded)
format"); moto matches the raw key, and writes "/" as %2F in its events' keys, where S3 keeps it. Local mode matches
and writes keys in S3's form (detect_faces.subscriptions.notification_form), so a raw filter such as
"Camera Uploads/" delivers nothing locally, as on AWS.

Notification configurations: S3 refuses a configuration in which two entries overlap (a common event type and
prefixes and suffixes that could both match a key); moto accepts it. Local mode refuses it with S3's message,
so attaching to a bucket another consumer uses fails locally where it would fail on deploy.

DynamoDB: moto applies an UpdateItem's actions one by one on the live item, so a concurrent conditional
write can see half of another (an item with `status` set but no `sequencer` yet). DynamoDB makes every
single-item write atomic; local mode serialises moto's item operations to match. The fault rehearsal
found this: a removal evaluated its condition against a claim in mid-write.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from detect_faces.subscriptions import notification_form

if TYPE_CHECKING:
    from moto.s3.notifications import S3NotificationEvent

    _Pair = tuple[S3NotificationEvent, S3NotificationEvent]  # (a deletion, a delete marker)

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
    _s3_lifecycle_expiration()  # first: it keeps moto's own DeleteObject, which _s3_removal_events replaces
    _s3_event_fields()
    _s3_removal_events()
    _s3_key_filters()
    _serialise_dynamodb()
    _eventbridge_events()
    _refuse_overlapping_notifications()


def _removed_and_expired() -> tuple[_Pair, _Pair]:
    """The event names of a removal by a request, and of an expiration by a lifecycle rule: (delete, marker)."""
    from moto.s3.notifications import S3NotificationEvent as Events

    return (
        (Events.OBJECT_REMOVED_DELETE_EVENT, Events.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT),
        (Events.LIFECYCLEEXPIRATION_DELETE_EVENT, Events.LIFECYCLE_EXPIRATION_DELETE_MARKER_CREATED_EVENT),
    )


def _s3_event_fields() -> None:
    """Every S3 event with the key as S3 writes it, the version id, and an increasing sequencer; a removal's
    without size and ETag."""
    from moto.s3 import notifications

    original = notifications._get_s3_event
    removed, expired = _removed_and_expired()

    def get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event: dict[str, Any] = original(event_name, bucket, key, notification_id)
        obj = event["Records"][0]["s3"]["object"]
        obj["key"] = notification_form(key.name)
        version = getattr(key, "version_id", None)
        if getattr(bucket, "is_versioned", False) and version and version != "null":
            obj["versionId"] = str(version)
        obj["sequencer"] = next_sequencer()
        if event_name in removed or event_name in expired:
            obj.pop("size", None)
            obj.pop("eTag", None)
        return event

    notifications._get_s3_event = get_s3_event


def _s3_removal_events() -> None:
    """DeleteObject's events as S3 sends them (moto's own are dropped): a delete marker's, or a deletion's."""
    from moto.s3 import models, notifications

    original_send = notifications.send_event
    original_delete = models.S3Backend.delete_object
    removed, _ = _removed_and_expired()
    local = threading.local()

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
            marker = bucket.is_versioned and version_id is None
            key = SimpleNamespace(name=key_name, etag="", size=0, version_id=meta.get("version-id"))
            local.ours = True
            try:
                notifications.send_event(self.account_id, removed[1] if marker else removed[0], bucket, key)
            finally:
                local.ours = False
        return ok, meta

    notifications.send_event = send_event
    models.S3Backend.delete_object = delete_object  # type: ignore[method-assign]


def _s3_key_filters() -> None:
    """Notification filters matched against the key in the URL-encoded form S3 matches them against."""
    from moto.s3 import models

    original = models.Notification._key_matches

    def key_matches(self: Any, key_name: str) -> bool:
        return bool(original(self, notification_form(key_name)))

    models.Notification._key_matches = key_matches  # type: ignore[method-assign]


def _s3_lifecycle_expiration() -> None:
    """`expire`: what an expiration rule does to a key's current version, with S3's events for it."""
    global _expire
    from moto.s3 import models, notifications

    original_delete = models.S3Backend.delete_object  # moto's own, before _s3_removal_events patches it
    _, expired = _removed_and_expired()

    def expire_key(account_id: str, bucket_name: str, key_name: str) -> None:
        backend = models.s3_backends[account_id]["aws"]
        bucket = backend.get_bucket(bucket_name)
        if key_name not in bucket.keys:
            raise KeyError(f"s3://{bucket_name}/{key_name} has no current version to expire")
        _, meta = original_delete(backend, bucket_name, key_name)  # moto's own ObjectRemoved event is dropped
        name = expired[1] if bucket.is_versioned else expired[0]
        key = SimpleNamespace(name=key_name, etag="", size=0, version_id=meta.get("version-id"))
        notifications.send_event(account_id, name, bucket, key)

    _expire = expire_key


_expire: Callable[[str, str, str], None] | None = None  # set by install()


def expire(account_id: str, bucket: str, key: str) -> None:
    """An S3 Lifecycle expiration of the key's current version, with S3's events for it (see the module's doc)."""
    install()
    assert _expire is not None
    _expire(account_id, bucket, key)


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


EVENTBRIDGE_REASONS = {
    "Put": "PutObject",
    "Post": "PostObject",
    "Copy": "CopyObject",
    "CompleteMultipartUpload": "CompleteMultipartUpload",
}


def _eventbridge_events() -> None:
    import time
    import uuid

    from moto.s3 import notifications

    original = notifications._send_event_bridge_message
    events = notifications.S3NotificationEvent
    marker = events.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT
    removed = (events.OBJECT_REMOVED_DELETE_EVENT, marker)
    expired_marker = events.LIFECYCLE_EXPIRATION_DELETE_MARKER_CREATED_EVENT
    expired = (events.LIFECYCLEEXPIRATION_DELETE_EVENT, expired_marker)

    def send(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        kind = event_name.split(":")
        created = kind[1] == "ObjectCreated" and kind[2] in EVENTBRIDGE_REASONS
        if not created and event_name not in removed and event_name not in expired:
            original(account_id, bucket, event_name, key)  # restore, tagging, ...: moto's own
            return
        from moto.events.models import events_backends

        obj: dict[str, Any] = {"key": key.name}
        if created:
            obj.update(size=key.size, etag=str(key.etag).strip('"'))
        version = getattr(key, "version_id", None)
        if getattr(bucket, "is_versioned", False) and version and version != "null":
            obj["version-id"] = str(version)
        obj["sequencer"] = next_sequencer()
        detail: dict[str, Any] = {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": "s3.amazonaws.com" if event_name in expired else account_id,
            "source-ip-address": "127.0.0.1",
            "reason": (
                EVENTBRIDGE_REASONS[kind[2]]
                if created
                else "Lifecycle Expiration"
                if event_name in expired
                else "DeleteObject"
            ),
        }
        if not created:
            markers = (marker, expired_marker)
            detail["deletion-type"] = "Delete Marker Created" if event_name in markers else "Permanently Deleted"
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Object Created" if created else "Object Deleted",
            "source": "aws.s3",
            "account": account_id,
            "time": time.time(),  # moto's EventBridge writes it out as ISO 8601, as AWS does
            "region": bucket.region_name,
            "resources": [bucket.arn],
            "detail": detail,
        }
        backend = events_backends[account_id][bucket.region_name]
        for bus in list(backend.event_buses.values()):
            for rule in list(bus.rules.values()):
                rule.send_to_targets(event, transform_input=False)  # type: ignore[arg-type]

    notifications._send_event_bridge_message = send


def _refuse_overlapping_notifications() -> None:
    from moto.s3 import models
    from moto.s3.exceptions import InvalidArgumentError

    from facepipe.common.notifications import OVERLAP_MESSAGE, Subscription, first_overlap

    original = models.S3Backend.put_bucket_notification_configuration

    def put(self: Any, bucket_name: str, notification_config: dict[str, Any]) -> None:
        bucket = self.get_bucket(bucket_name)
        previous = bucket.notification_configuration
        original(self, bucket_name, notification_config)
        config = bucket.notification_configuration
        entries = []
        for entry in [*config.cloud_function, *config.queue, *config.topic] if config else []:
            rules = {r["Name"].lower(): r["Value"] for r in entry.filters.get("S3Key", {}).get("FilterRule", [])}
            entries.append(
                Subscription(entry.arn, tuple(entry.events), rules.get("prefix", ""), rules.get("suffix", ""))
            )
        if first_overlap(entries):
            bucket.notification_configuration = previous
            raise InvalidArgumentError(OVERLAP_MESSAGE, "Configuration", "")

    models.S3Backend.put_bucket_notification_configuration = put  # type: ignore[method-assign]

    from moto.core.common_types import TYPE_RESPONSE
    from moto.s3.responses import S3Response

    original_get = S3Response.get_bucket_notification

    def get(self: Any) -> TYPE_RESPONSE:
        config = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if config is None or config.event_bridge is None:
            return original_get(self)
        original_serialized = self.serialized

        def serialized(result: Any) -> Any:
            result.result["EventBridgeConfiguration"] = {}
            return original_serialized(result)

        self.serialized = serialized
        try:
            return original_get(self)
        finally:
            del self.serialized

    S3Response.get_bucket_notification = get  # type: ignore[method-assign]
