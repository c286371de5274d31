"""The claim state machine of an image's META item: which event owns the image (claim), how it ends (DETECTED,
REJECTED, DEAD_LETTERED / TASK_FAILED, RETRYING), and removals (tombstones), each a conditional write ordered by
S3's sequencer (docs/DESIGN.md, "Ordering and ownership of an image"). What the tools read is results.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from .chunks import ENCODING as FACES_ENCODING
from .chunks import FACES_JSON_GZIP, chunk_faces, chunk_keys
from .contract import (
    FACES_SK_PREFIX,
    INDEX_PARTITION_KEY,
    INDEX_SORT_KEY,
    MALFORMED_PK_PREFIX,
    META_SK,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    TTL_ATTRIBUTE,
    Status,
)
from .errors import error_code
from .model import NULL_VERSION, ImageEvent, utc_iso
from .results import ResultsStore, image_pk
from .updates import IfNotExists, Item, UpdateArgs, decode_item, serialize, update_args

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Every attribute is referenced through a placeholder: several of ours (status, bucket, size...) are
# DynamoDB reserved words.
_CONDITION_NAMES = {
    "#pk": TABLE_PARTITION_KEY,
    "#status": "status",
    "#seq": "sequencer",
    "#lease": "lease_expires",
    "#token": "claim_token",
    "#rid": "claim_request_id",
    "#vid": "version_id",
    "#etag": "etag",
    "#scope": "removed_scope",
    "#removed": "removed_versions",
}


def _args(
    set_values: Mapping[str, object],
    remove: list[str],
    condition: str,
    condition_values: Mapping[str, object],
    *,
    add: Mapping[str, object] | None = None,
) -> UpdateArgs:
    """update_args with this module's condition placeholders."""
    return update_args(_CONDITION_NAMES, set_values, remove, condition, condition_values, add=add)


# What a tombstone removed: one version (it outranks only that version's events) or the whole object.
SCOPE_VERSION = "version"
SCOPE_OBJECT = "object"
# Result fields of a finished event: a new claim clears them, so no claim shows another version's result.
_RESULT_FIELDS = [
    "reason",
    TTL_ATTRIBUTE,
    "face_count",
    "finished_at",
    "detected_at",  # what items written before 0.3 call finished_at
    "attributes",
    "face_chunks",
    "removed_scope",
]


@dataclass
class Claim:
    acquired: bool
    token: str
    previous: dict[str, Any] = field(default_factory=dict)  # the META_SK item before the claim (or the blocker)
    sequencer: str = ""  # the sequencer META_SK holds under this claim (it names the claim's face chunks)


class ImageClaims:
    """Conditional writes of one results table's META items and face chunks, for the function."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self.results = ResultsStore(client, table_name)  # the read model, for what a write must look at first

    # ---- the claim: ordering and idempotency -------------------------------------------------
    def claim(
        self,
        event: ImageEvent,
        token: str,
        now: datetime,
        *,
        lease_seconds: int,
        redrive: bool,
        request_id: str = "",
    ) -> Claim:
        """Take the image for this event, unless a newer or identical event already owns or finished it
        (docs/DESIGN.md, "Claims"). Never when this version was deleted for good.

        An event takes the image when nothing is stored; the stored sequencer is older; or it is this very event
        and the earlier attempt failed (RETRYING), died (PROCESSING whose lease ran out, or whose claim this same
        request made: Lambda retries an async invocation with its request id, and never while the attempt still
        runs), or it was dead-lettered and this is a redrive.

        A record whose version a HEAD showed current (`claims_as_current`: a backfill record, an older event whose
        version is current again, the version a removal left current) takes an image whose stored item is not a
        result for this very version and not a live claim: nothing, a tombstone, a failure, a released or expired
        claim, or another version's result. Its claim keeps the stored sequencer: the sequencer never goes down,
        so an older event can never take over through it.
        """
        epoch = int(now.timestamp())
        vid = event.ref.version_key
        same_event = (
            "(#seq = :seq AND #status = :retrying)"
            " OR (#seq = :seq AND #status = :processing AND (#lease < :now OR #rid = :rid))"
            " OR (#seq = :seq AND #status IN (:dead, :taskfailed, :failed) AND :redrive = :true)"
        )
        sequencer: str | IfNotExists = event.sequencer
        if event.claims_as_current:
            same_object = "#vid = :vid" if vid else "#etag = :etag"
            taken = (
                "attribute_not_exists(#pk) OR #status IN (:deleted, :dead, :taskfailed, :failed, :retrying)"
                " OR (#status = :processing AND (#lease < :now OR #rid = :rid))"
                f" OR (#status IN (:detected, :rejected) AND NOT ({same_object}))"
            )
            sequencer = IfNotExists(event.sequencer)
        else:
            taken = f"attribute_not_exists(#pk) OR #seq < :seq OR {same_event}"
        condition = taken
        if vid:
            condition = f"(attribute_not_exists(#removed) OR NOT contains(#removed, :vid)) AND ({taken})"
        args = _args(
            {
                "status": Status.PROCESSING.value,
                "sequencer": sequencer,
                "claim_token": token,
                "claim_request_id": request_id or token,
                "lease_expires": epoch + lease_seconds,
                INDEX_PARTITION_KEY: event.ref.bucket,  # the by-key index lists summary items by bucket and key
                INDEX_SORT_KEY: event.ref.key,
                "event_time": event.event_time,
                "version_id": vid,
                "etag": event.etag,
                "size_bytes": event.size,
            },
            _RESULT_FIELDS,
            condition,
            {
                ":seq": event.sequencer,
                ":processing": Status.PROCESSING.value,
                ":retrying": Status.RETRYING.value,
                ":failed": Status.FAILED.value,
                ":dead": Status.DEAD_LETTERED.value,
                ":taskfailed": Status.TASK_FAILED.value,
                ":deleted": Status.DELETED.value,
                ":detected": Status.DETECTED.value,
                ":rejected": Status.REJECTED.value,
                ":vid": vid,
                ":etag": event.etag or "",
                ":now": epoch,
                ":rid": request_id or token,
                ":redrive": redrive,
                ":true": True,
            },
        )
        blocker: dict[str, Any] = {}
        previous = self._update_meta(event, args, blocker=blocker)
        if previous is None:
            return Claim(acquired=False, token=token, previous=blocker)
        held = str(previous.get("sequencer") or "") if event.claims_as_current else ""
        return Claim(acquired=True, token=token, previous=previous, sequencer=held or event.sequencer)

    # ---- final states (each conditional on still holding the claim) ---------------------------
    def store_detected(
        self, event: ImageEvent, claim: Claim, faces: Sequence[Mapping[str, object]], attributes: str, now: datetime
    ) -> bool:
        chunks = chunk_faces(faces)
        sequencer = claim.sequencer or event.sequencer
        written = chunk_keys(sequencer, len(chunks))
        for sk, blob in zip(written, chunks, strict=True):
            key = self._key(event, sk)
            self._client.put_item(
                TableName=self._table,
                Item={
                    **key,
                    "sequencer": {"S": sequencer},
                    "encoding": {"S": FACES_ENCODING},
                    FACES_JSON_GZIP: {"B": blob},
                },
            )
        committed = self._finish(
            event,
            claim,
            Status.DETECTED,
            reason=None,
            extra={
                "face_count": len(faces),
                "attributes": attributes,
                "finished_at": utc_iso(now),
                "face_chunks": len(chunks),
            },
        )
        if not committed:  # a newer event took the image meanwhile: our chunks are garbage
            self._deletechunk_keys(event, sequencer, len(chunks))
            return False
        self._clean_after(event, claim.previous, keep=frozenset(written))
        return True

    def store_rejected(self, event: ImageEvent, claim: Claim, reason: str, now: datetime) -> bool:
        return self._finish_and_clean(event, claim, Status.REJECTED, reason, now)

    def store_dead_lettered(self, event: ImageEvent, claim: Claim, reason: str, now: datetime) -> bool:
        """The object is unreadable and its failure record is in the DLQ."""
        return self._finish_and_clean(event, claim, Status.DEAD_LETTERED, reason, now)

    def store_task_failed(self, event: ImageEvent, claim: Claim, reason: str, now: datetime) -> bool:
        """The object of a backlog task is unreadable; the job's completion report is its record."""
        return self._finish_and_clean(event, claim, Status.TASK_FAILED, reason, now)

    def mark_retrying(self, event: ImageEvent, claim: Claim, reason: str) -> bool:
        """The invocation is failing: let Lambda's retry (same sequencer) claim the image again."""
        return self._finish(event, claim, Status.RETRYING, reason=reason, extra={})

    def _finish_and_clean(self, event: ImageEvent, claim: Claim, status: Status, reason: str, now: datetime) -> bool:
        committed = self._finish(
            event, claim, status, reason=reason, extra={"face_count": 0, "finished_at": utc_iso(now), "face_chunks": 0}
        )
        if committed:
            self._clean_after(event, claim.previous)
        return committed

    def _finish(
        self, event: ImageEvent, claim: Claim, status: Status, *, reason: str | None, extra: Mapping[str, object]
    ) -> bool:
        args = _args(
            {"status": status.value, "reason": reason, **extra},
            ["claim_token", "claim_request_id", "lease_expires"],
            "#token = :token",
            {":token": claim.token},
        )
        return self._update_meta(event, args) is not None

    # ---- removal -------------------------------------------------------------------------------
    def remove(self, event: ImageEvent, now: datetime, ttl_seconds: int) -> bool:
        """Delete the image's face data and leave a tombstone (with a TTL) holding the removal's sequencer.

        The tombstone stops a late ObjectCreated event from resurrecting results. Its reach depends on what
        was removed (docs/DESIGN.md, "Ordering"):
        - the object (a delete marker, or a delete in an unversioned bucket): every older event of the key;
          it also widens a one-version tombstone to the object, whatever the order (keeping the newer
          sequencer); a marker that was itself deleted for good (in `removed_versions`) removes nothing;
        - one version, deleted for good: only that version. The version id joins `removed_versions`, which
          no claim clears, so that version's late events never claim the image; the stored result is
          replaced by the tombstone only when it is that version's, and other versions' events still win.
          No version id and S3's "null" are one version; "null" never joins `removed_versions` (S3 reuses it).
        The stored sequencer never goes down. Returns True when the stored result was replaced by the tombstone.
        """
        one_version = event.removes_one_version
        vid = event.ref.version_key
        tombstone = {
            "status": Status.DELETED.value,
            "sequencer": event.sequencer,
            TTL_ATTRIBUTE: int(now.timestamp()) + ttl_seconds,
            "finished_at": utc_iso(now),
            "reason": event.event_name,
            "removed_scope": SCOPE_VERSION if one_version else SCOPE_OBJECT,
            INDEX_PARTITION_KEY: event.ref.bucket,
            INDEX_SORT_KEY: event.ref.key,
            "event_time": event.event_time,
            "version_id": vid,
            "face_count": 0,
            "face_chunks": 0,
        }
        cleared = ["claim_token", "claim_request_id", "lease_expires", "attributes", "etag", "size_bytes"]
        values: dict[str, object] = {":seq": event.sequencer, ":vid": vid, ":null": NULL_VERSION}
        # A version id that joins removed_versions: a real one (S3 reuses "null" for every unversioned write).
        forget: dict[str, object] | None = {"removed_versions": {vid}} if vid else None
        not_removed = "(attribute_not_exists(#removed) OR NOT contains(#removed, :vid))" if vid else ""
        if one_version:
            # The stored item is this version's (no version id and "null" are one version).
            this_version = "#vid = :vid" if vid else "(attribute_not_exists(#vid) OR #vid = :null)"
            attempts = [(tombstone, f"attribute_not_exists(#pk) OR ({this_version} AND #seq < :seq)")]
        else:
            # A delete marker that was itself deleted for good (its version id is in removed_versions) removes
            # nothing any more: its late event must not wipe the version it uncovered.
            guard = f"{not_removed} AND " if not_removed else ""
            values.update({":deleted": Status.DELETED.value, ":vscope": SCOPE_VERSION})
            attempts = [
                (tombstone, f"{guard}(attribute_not_exists(#pk) OR #seq < :seq)"),
                # An older marker still widens a one-version tombstone to the object, keeping the newer sequencer.
                (
                    {k: v for k, v in tombstone.items() if k != "sequencer"},
                    f"{guard}#status = :deleted AND #scope = :vscope",
                ),
            ]
        for fields, condition in attempts:
            previous = self._update_meta(event, _args(fields, cleared, condition, values, add=forget))
            if previous is not None:
                self._clean_after(event, previous)
                return True
        if one_version and forget:
            # The stored item belongs to another version: keep it, and remember that this version is gone.
            self._update_meta(event, _args({}, [], "attribute_exists(#pk)", {}, add=forget))
        return False

    # ---- malformed records ------------------------------------------------------------------------
    def note_malformed(self, fingerprint: str, reason: str, now: datetime, ttl_seconds: int) -> bool:
        """Remember a malformed record (by a fingerprint of its content): True the first time only, so a
        Lambda retry of its event does not dead-letter it again. Not an image: no bucket/key, not listed."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=serialize(
                    {
                        TABLE_PARTITION_KEY: f"{MALFORMED_PK_PREFIX}{fingerprint}",
                        TABLE_SORT_KEY: META_SK,
                        "reason": reason,
                        "finished_at": utc_iso(now),
                        TTL_ATTRIBUTE: int(now.timestamp()) + ttl_seconds,
                    }
                ),
                ConditionExpression=f"attribute_not_exists({TABLE_PARTITION_KEY})",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def forget_malformed(self, fingerprint: str) -> None:
        """Undo note_malformed when its dead-letter message could not be sent (the retry sends it)."""
        key = {TABLE_PARTITION_KEY: f"{MALFORMED_PK_PREFIX}{fingerprint}", TABLE_SORT_KEY: META_SK}
        self._client.delete_item(TableName=self._table, Key=serialize(key))

    # ---- helpers -------------------------------------------------------------------------------
    def _update_meta(
        self, event: ImageEvent, args: UpdateArgs, blocker: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """A conditional update of the image's META_SK item: the item as it was before, or None when the
        condition failed (another event owns or finished the image). Given `blocker`, a failed condition fills
        it with the item that blocked the update, from the same call (ReturnValuesOnConditionCheckFailure)."""
        if blocker is not None:
            args = args.copy()
            args["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            response = self._client.update_item(
                TableName=self._table, Key=self._key(event, META_SK), ReturnValues="ALL_OLD", **args
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                if blocker is not None:
                    blocker.update(decode_item(_item_of(exc)))
                return None
            raise
        return decode_item(response.get("Attributes", {}))

    def _clean_after(self, event: ImageEvent, previous: dict[str, Any], keep: frozenset[str] = frozenset()) -> None:
        """Delete face chunks that are no longer current, knowing them from META_SK as it was before; `keep` are
        the sort keys of the chunks the new result just wrote (a claim that kept the stored sequencer writes
        under the same keys as the result it replaces).

        A committed older result names its chunks (sequencer and count): delete those by key, no read.
        After an interrupted writer (PROCESSING or RETRYING before us) chunks may exist that META_SK never
        named, so look them up. A new image (no previous META_SK) has nothing to clean.
        """
        if not previous:
            return
        if previous.get("status") in (Status.PROCESSING.value, Status.RETRYING.value):
            self._delete_chunks(event, keep)
            return
        sequencer = str(previous.get("sequencer", ""))
        if sequencer:
            self._deletechunk_keys(event, sequencer, int(previous.get("face_chunks") or 0), keep)

    def _deletechunk_keys(
        self, event: ImageEvent, sequencer: str, count: int, keep: frozenset[str] = frozenset()
    ) -> None:
        for sk in chunk_keys(sequencer, count):
            if sk not in keep:
                self._client.delete_item(TableName=self._table, Key=self._key(event, sk))

    def _delete_chunks(self, event: ImageEvent, keep: frozenset[str]) -> None:
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :prefix)",
            ExpressionAttributeNames={"#pk": TABLE_PARTITION_KEY, "#sk": TABLE_SORT_KEY},
            ExpressionAttributeValues={
                ":pk": {"S": image_pk(event.ref.bucket, event.ref.key)},
                ":prefix": {"S": FACES_SK_PREFIX},
            },
            ProjectionExpression="#pk, #sk",
            ConsistentRead=True,
        )
        for page in pages:
            for item in page.get("Items", []):
                if item[TABLE_SORT_KEY]["S"] in keep:
                    continue
                key = {TABLE_PARTITION_KEY: item[TABLE_PARTITION_KEY], TABLE_SORT_KEY: item[TABLE_SORT_KEY]}
                self._client.delete_item(TableName=self._table, Key=key)

    def _key_values(self, event: ImageEvent, sk: str) -> dict[str, str]:
        return {TABLE_PARTITION_KEY: image_pk(event.ref.bucket, event.ref.key), TABLE_SORT_KEY: sk}

    def _key(self, event: ImageEvent, sk: str) -> Item:
        return serialize(self._key_values(event, sk))


def _item_of(exc: ClientError) -> Item:
    """The item a failed condition returned (ReturnValuesOnConditionCheckFailure), or {}."""
    item = exc.response.get("Item")
    return item if isinstance(item, dict) else {}
