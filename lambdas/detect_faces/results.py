"""The results table as its readers see it: one partition per image, everything known about it in one Query.

Layout (pk = "<bucket>/<key>"):
  sk = "META"                       status, reason, version, etag, size, sequencer, attributes, face_count, ...
  sk = "FACES#<sequencer>#<nnnn>"   a chunk of FaceDetails (chunks.py)

META_SK names the sequencer whose chunks are current. The writes (claims, results, removals) are claims.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .chunks import chunk_faces_of, chunk_keys
from .contract import (
    INDEX_BY_KEY,
    INDEX_PARTITION_KEY,
    INDEX_SORT_KEY,
    META_SK,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    Status,
)
from .updates import Item, decode_item, serialize

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def image_pk(bucket: str, key: str) -> str:
    return f"{bucket}/{key}"


@dataclass
class ImageResult:
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    sequencer: str
    status: Status
    reason: str | None
    face_count: int | None
    attributes: str | None
    finished_at: str | None  # when the status was reached: the detection, rejection, failure or removal
    event_time: str | None
    faces: list[dict[str, Any]]


class ResultsStore:
    """Reads of one results table: an image, the images under a prefix, an image's summary item."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
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
        values: Item = {":bucket": {"S": bucket}}
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
            Key=serialize({TABLE_PARTITION_KEY: image_pk(bucket, key), TABLE_SORT_KEY: META_SK}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        return decode_item(item) if item else None


def assemble(items: list[dict[str, Any]]) -> ImageResult | None:
    meta = next((i for i in items if i.get(TABLE_SORT_KEY) == META_SK), None)
    if meta is None:
        return None
    sequencer = str(meta.get("sequencer", ""))
    current = set(chunk_keys(sequencer, int(meta.get("face_chunks") or 0)))
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
        status=Status(str(meta.get("status"))),
        reason=meta.get("reason"),
        face_count=int(count) if count is not None else None,
        attributes=meta.get("attributes"),
        finished_at=meta.get("finished_at") or meta.get("detected_at"),  # items before 0.3: detected_at
        event_time=meta.get("event_time"),
        faces=faces,
    )
