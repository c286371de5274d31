"""The results table: one partition per image, ordered and idempotent by S3 sequencer.

Layout (pk = "<bucket>/<key>"):
  sk = "META"                       status, reason, version, etag, size, sequencer, attributes, face_count, ...
  sk = "FACES#<sequencer>#<nnnn>"   a chunk of FaceDetails (as Rekognition returned them, numbers as Decimal)

One Query on pk returns everything known about the image. FaceDetails are split into chunks that stay
well under DynamoDB's 400 KB item limit, so 100 faces with Attributes=ALL store completely.
Chunks are keyed by sequencer: a slower, older writer can never overwrite a newer result's faces, and
META_SK names the sequencer whose chunks are current.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from .contract import (
    FACES_SK_PREFIX,
    INDEX_BY_KEY,
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
from .faces import ENCODING as FACES_ENCODING
from .faces import decode as decode_faces
from .faces import encode as encode_faces
from .model import NULL_VERSION, ImageEvent, utc_iso

# One chunk's blob stays far below DynamoDB's 400 KB item limit.
MAX_CHUNK_BYTES = 300_000
FACES_BLOB = "faces_fpf1"  # a chunk's FaceDetails, FPF1-encoded (faces.py)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def image_pk(bucket: str, key: str) -> str:
    return f"{bucket}/{key}"


def from_dynamo(value: Any) -> Any:
    """DynamoDB numbers (Decimal) back to Python ints and floats: how FaceDetails stored before FPF1 read."""
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent == 0 else float(value)
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    return value


def _ser(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items() if v is not None}


def decode_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


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
# What a tombstone removed: one version (it outranks only that version's events) or the whole object.
SCOPE_VERSION = "version"
SCOPE_OBJECT = "object"
# Result fields of a finished event: a new claim clears them, so no claim shows another version's result.
_RESULT_FIELDS = ["reason", TTL_ATTRIBUTE, "face_count", "detected_at", "attributes", "face_chunks", "removed_scope"]


@dataclass(frozen=True)
class IfNotExists:
    """A SET value written only when the attribute has none: `#a = if_not_exists(#a, :v)`."""

    value: Any


def _update_args(
    set_values: dict[str, Any],
    remove: list[str],
    condition: str,
    condition_values: dict[str, Any],
    add: dict[str, Any] | None = None,
) -> dict[str, Any]:
    names = dict(_CONDITION_NAMES)
    values = dict(condition_values)
    sets, removes, adds = [], [], []
    for i, (attr, value) in enumerate(set_values.items()):
        if value is None:
            remove = [*remove, attr]
            continue
        names[f"#s{i}"] = attr
        if isinstance(value, IfNotExists):
            values[f":s{i}"] = value.value
            sets.append(f"#s{i} = if_not_exists(#s{i}, :s{i})")
        else:
            values[f":s{i}"] = value
            sets.append(f"#s{i} = :s{i}")
    for i, attr in enumerate(dict.fromkeys(remove)):
        names[f"#r{i}"] = attr
        removes.append(f"#r{i}")
    for i, (attr, value) in enumerate((add or {}).items()):
        names[f"#a{i}"] = attr
        values[f":a{i}"] = value
        adds.append(f"#a{i} :a{i}")
    expression = (
        ("SET " + ", ".join(sets) if sets else "")
        + (" REMOVE " + ", ".join(removes) if removes else "")
        + (" ADD " + ", ".join(adds) if adds else "")
    )
    text = f"{expression} {condition}"
    args: dict[str, Any] = {
        "UpdateExpression": expression.strip(),
        "ExpressionAttributeNames": {n: a for n, a in names.items() if _mentions(text, n)},
        "ExpressionAttributeValues": _ser({n: v for n, v in values.items() if _mentions(text, n)}),
    }
    if condition:
        args["ConditionExpression"] = condition
    return args


def _mentions(text: str, placeholder: str) -> bool:
    return re.search(re.escape(placeholder) + r"(?![A-Za-z0-9_])", text) is not None


def chunk_faces(faces: list[dict[str, Any]], limit: int = MAX_CHUNK_BYTES) -> list[bytes]:
    """FaceDetails as FPF1 blobs (faces.py), each far below DynamoDB's 400 KB item limit: all of them in one
    blob when it fits (100 faces with Attributes=ALL take ~40 KB), else halves, recursively."""
    if not faces:
        return []
    blob = encode_faces(faces)
    if len(blob) <= limit or len(faces) == 1:
        return [blob]
    middle = len(faces) // 2
    return chunk_faces(faces[:middle], limit) + chunk_faces(faces[middle:], limit)


def chunk_faces_of(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The FaceDetails of one stored chunk: FPF1 (since 0.2), or DynamoDB numbers (items written before)."""
    if FACES_BLOB in item:
        blob = item[FACES_BLOB]
        return decode_faces(bytes(blob.value if hasattr(blob, "value") else blob))
    return [from_dynamo(face) for face in item.get("faces", [])]


@dataclass
class Claim:
    acquired: bool
    token: str
    previous: dict[str, Any] = field(default_factory=dict)  # the META_SK item before the claim (or the blocker)
    sequencer: str = ""  # the sequencer META_SK holds under this claim (it names the claim's face chunks)


@dataclass
class ImageResult:
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    sequencer: str
    status: str
    reason: str | None
    face_count: int | None
    attributes: str | None
    detected_at: str | None
    event_time: str | None
    faces: list[dict[str, Any]]


class ResultsStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    # ---- reads -------------------------------------------------------------------------------
    def get(self, bucket: str, key: str) -> ImageResult | None:
        """Everything known about one image, from one (paginated) Query."""
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": TABLE_PARTITION_KEY},
            ExpressionAttributeValues={":pk": {"S": image_pk(bucket, key)}},
            ConsistentRead=True,
        )
        return assemble([decode_item(i) for page in pages for i in page.get("Items", [])])

    def list_summaries(self, bucket: str, prefix: str = "") -> Iterator[ImageResult]:
        """Every image of a bucket under a key prefix, in key order, without faces: a Query of the sparse
        by-key index, which holds the summary items only."""
        names = {"#b": INDEX_PARTITION_KEY}
        values: dict[str, Any] = {":bucket": {"S": bucket}}
        condition = "#b = :bucket"
        if prefix:  # begins_with needs a non-empty prefix
            names["#k"] = INDEX_SORT_KEY
            values[":prefix"] = {"S": prefix}
            condition += " AND begins_with(#k, :prefix)"
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            IndexName=INDEX_BY_KEY,
            KeyConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        for page in pages:
            for item in page.get("Items", []):
                result = assemble([decode_item(item)])
                if result is not None:
                    yield result

    def summary(self, bucket: str, key: str) -> dict[str, Any] | None:
        """The image's summary item (META_SK) alone: status, version, ETag, sequencer; no faces."""
        response = self._client.get_item(
            TableName=self._table,
            Key=_ser({TABLE_PARTITION_KEY: image_pk(bucket, key), TABLE_SORT_KEY: META_SK}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return decode_item(item) if item else None

    # ---- the claim: ordering and idempotency -------------------------------------------------
    def claim(
        self,
        event: ImageEvent,
        token: str,
        now: datetime,
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
            " OR (#seq = :seq AND #status = :failed AND :redrive = :true)"
        )
        sequencer: Any = event.sequencer
        if event.claims_as_current:
            same_object = "#vid = :vid" if vid else "#etag = :etag"
            taken = (
                "attribute_not_exists(#pk) OR #status IN (:deleted, :failed, :retrying)"
                " OR (#status = :processing AND (#lease < :now OR #rid = :rid))"
                f" OR (#status IN (:detected, :rejected) AND NOT ({same_object}))"
            )
            sequencer = IfNotExists(event.sequencer)
        else:
            taken = f"attribute_not_exists(#pk) OR #seq < :seq OR {same_event}"
        condition = taken
        if vid:
            condition = f"(attribute_not_exists(#removed) OR NOT contains(#removed, :vid)) AND ({taken})"
        args = _update_args(
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
        self, event: ImageEvent, claim: Claim, faces: list[dict[str, Any]], attributes: str, now: datetime
    ) -> bool:
        chunks = chunk_faces(faces)
        sequencer = claim.sequencer or event.sequencer
        written = _chunk_keys(sequencer, len(chunks))
        for sk, blob in zip(written, chunks, strict=True):
            key = self._key(event, sk)
            self._client.put_item(
                TableName=self._table,
                Item={
                    **key,
                    "sequencer": {"S": sequencer},
                    "encoding": {"S": FACES_ENCODING},
                    FACES_BLOB: {"B": blob},
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
                "detected_at": utc_iso(now),
                "face_chunks": len(chunks),
            },
        )
        if not committed:  # a newer event took the image meanwhile: our chunks are garbage
            self._delete_chunk_keys(event, sequencer, len(chunks))
            return False
        self._clean_after(event, claim.previous, keep=frozenset(written))
        return True

    def store_rejected(self, event: ImageEvent, claim: Claim, reason: str, now: datetime) -> bool:
        return self._finish_and_clean(event, claim, Status.REJECTED, reason, now)

    def store_failed(self, event: ImageEvent, claim: Claim, reason: str, now: datetime) -> bool:
        return self._finish_and_clean(event, claim, Status.FAILED, reason, now)

    def mark_retrying(self, event: ImageEvent, claim: Claim, reason: str) -> bool:
        """The invocation is failing: let Lambda's retry (same sequencer) claim the image again."""
        return self._finish(event, claim, Status.RETRYING, reason=reason, extra={})

    def _finish_and_clean(self, event: ImageEvent, claim: Claim, status: Status, reason: str, now: datetime) -> bool:
        committed = self._finish(
            event, claim, status, reason=reason, extra={"face_count": 0, "detected_at": utc_iso(now), "face_chunks": 0}
        )
        if committed:
            self._clean_after(event, claim.previous)
        return committed

    def _finish(
        self, event: ImageEvent, claim: Claim, status: Status, *, reason: str | None, extra: dict[str, Any]
    ) -> bool:
        args = _update_args(
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
            "detected_at": utc_iso(now),
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
        values: dict[str, Any] = {":seq": event.sequencer, ":vid": vid, ":null": NULL_VERSION}
        # A version id that joins removed_versions: a real one (S3 reuses "null" for every unversioned write).
        forget: dict[str, Any] | None = {"removed_versions": {vid}} if vid else None
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
            previous = self._update_meta(event, _update_args(fields, cleared, condition, values, add=forget))
            if previous is not None:
                self._clean_after(event, previous)
                return True
        if one_version and forget:
            # The stored item belongs to another version: keep it, and remember that this version is gone.
            self._update_meta(event, _update_args({}, [], "attribute_exists(#pk)", {}, add=forget))
        return False

    # ---- malformed records ------------------------------------------------------------------------
    def note_malformed(self, fingerprint: str, reason: str, now: datetime, ttl_seconds: int) -> bool:
        """Remember a malformed record (by a fingerprint of its content): True the first time only, so a
        Lambda retry of its event does not dead-letter it again. Not an image: no bucket/key, not listed."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_ser(
                    {
                        TABLE_PARTITION_KEY: f"{MALFORMED_PK_PREFIX}{fingerprint}",
                        TABLE_SORT_KEY: META_SK,
                        "reason": reason,
                        "detected_at": utc_iso(now),
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
        self._client.delete_item(TableName=self._table, Key=_ser(key))

    # ---- helpers -------------------------------------------------------------------------------
    def _update_meta(
        self, event: ImageEvent, args: dict[str, Any], blocker: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """A conditional update of the image's META_SK item: the item as it was before, or None when the
        condition failed (another event owns or finished the image). Given `blocker`, a failed condition fills
        it with the item that blocked the update, from the same call (ReturnValuesOnConditionCheckFailure)."""
        if blocker is not None:
            args = {**args, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        try:
            response = self._client.update_item(
                TableName=self._table, Key=self._key(event, META_SK), ReturnValues="ALL_OLD", **args
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                if blocker is not None:
                    blocker.update(decode_item(exc.response.get("Item") or {}))
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
            self._delete_chunk_keys(event, sequencer, int(previous.get("face_chunks") or 0), keep)

    def _delete_chunk_keys(
        self, event: ImageEvent, sequencer: str, count: int, keep: frozenset[str] = frozenset()
    ) -> None:
        for sk in _chunk_keys(sequencer, count):
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

    def _key_values(self, event: ImageEvent, sk: str) -> dict[str, Any]:
        return {TABLE_PARTITION_KEY: image_pk(event.ref.bucket, event.ref.key), TABLE_SORT_KEY: sk}

    def _key(self, event: ImageEvent, sk: str) -> dict[str, Any]:
        return _ser(self._key_values(event, sk))


def _chunk_keys(sequencer: str, count: int) -> list[str]:
    """The sort keys of a result's face chunks: FACES#<sequencer>#0000, #0001, ..."""
    return [f"{FACES_SK_PREFIX}{sequencer}#{index:04d}" for index in range(count)]


def assemble(items: list[dict[str, Any]]) -> ImageResult | None:
    meta = next((i for i in items if i.get(TABLE_SORT_KEY) == META_SK), None)
    if meta is None:
        return None
    sequencer = str(meta.get("sequencer", ""))
    current = set(_chunk_keys(sequencer, int(meta.get("face_chunks") or 0)))
    chunks = sorted((i for i in items if i.get(TABLE_SORT_KEY) in current), key=lambda i: i[TABLE_SORT_KEY])
    faces = [face for chunk in chunks for face in chunk_faces_of(chunk)]
    size = meta.get("size_bytes")
    count = meta.get("face_count")
    return ImageResult(
        bucket=str(meta.get(INDEX_PARTITION_KEY, "")),
        key=str(meta.get(INDEX_SORT_KEY, "")),
        version_id=meta.get("version_id"),
        etag=meta.get("etag"),
        size=int(size) if size is not None else None,
        sequencer=sequencer,
        status=str(meta.get("status", "")),
        reason=meta.get("reason"),
        face_count=int(count) if count is not None else None,
        attributes=meta.get("attributes"),
        detected_at=meta.get("detected_at"),
        event_time=meta.get("event_time"),
        faces=faces,
    )
