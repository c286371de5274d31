"""Face chunks: the FaceDetails of one result, split into items that stay far below DynamoDB's 400 KB item limit
(100 faces with Attributes=ALL store completely), keyed FACES#<sequencer>#<nnnn>, and read back from every format
ever written (docs/DESIGN.md, "Results (DynamoDB)").

The format written is a standard one: a chunk's `faces_json_gzip` attribute (binary) is gzip-compressed JSON, a list
of FaceDetails exactly as Rekognition returned them (schemas/result-faces-chunk.schema.json). Any language reads it
with its standard library (gzip, JSON) and the AWS SDK: Python's `json.loads(gzip.decompress(blob))`, Node's
`JSON.parse(zlib.gunzipSync(blob))`. Its numbers are the very numbers boto3 returned (JSON writes the shortest text
that reads back as the same double).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from .contract import FACES_SK_PREFIX
from .faces import decode as decode_faces

# One chunk's blob stays far below DynamoDB's 400 KB item limit.
MAX_CHUNK_BYTES = 300_000
FACES_JSON_GZIP = "faces_json_gzip"  # a chunk's FaceDetails: gzip-compressed JSON (the format written)
ENCODING = "json+gzip"  # the value of a chunk's `encoding` attribute
FACES_FPF1 = "faces_fpf1"  # chunks written by 0.2: FPF1 (faces.py), read only
# gzip level 5: 100 faces with Attributes=ALL compress to ~105 KB (~103 write units) in ~8 ms of CPU; level 9 saves
# 5 % of the bytes for three times the CPU (docs/BENCHMARKS.md, "Warm cost").
GZIP_LEVEL = 5


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


def encode(faces: Sequence[Mapping[str, object]]) -> bytes:
    """FaceDetails as gzip-compressed JSON (mtime 0: the same faces always give the same bytes)."""
    text = json.dumps(faces, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return gzip.compress(text.encode(), compresslevel=GZIP_LEVEL, mtime=0)


def decode(blob: bytes) -> list[dict[str, Any]]:
    faces: list[dict[str, Any]] = json.loads(gzip.decompress(blob))
    return faces


def chunk_faces(faces: Sequence[Mapping[str, object]], limit: int = MAX_CHUNK_BYTES) -> list[bytes]:
    """FaceDetails as gzip-JSON blobs, each far below DynamoDB's 400 KB item limit: all of them in one blob when it
    fits (100 faces with Attributes=ALL take ~105 KB), else halves, recursively."""
    if not faces:
        return []
    blob = encode(faces)
    if len(blob) <= limit or len(faces) == 1:
        return [blob]
    middle = len(faces) // 2
    return chunk_faces(faces[:middle], limit) + chunk_faces(faces[middle:], limit)


def chunk_faces_of(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The FaceDetails of one stored chunk, whichever format wrote it: gzip-JSON (since 0.3), FPF1 (0.2), or
    DynamoDB numbers (before). No item needs migrating."""
    if FACES_JSON_GZIP in item:
        return decode(_bytes(item[FACES_JSON_GZIP]))
    if FACES_FPF1 in item:
        return decode_faces(_bytes(item[FACES_FPF1]))
    return [from_dynamo(face) for face in item.get("faces", [])]


def _bytes(blob: Any) -> bytes:
    """A binary attribute as boto3 reads it (a Binary wrapper) or as bytes."""
    return bytes(blob.value if hasattr(blob, "value") else blob)


def chunk_keys(sequencer: str, count: int) -> list[str]:
    """The sort keys of a result's face chunks: FACES#<sequencer>#0000, #0001, ..."""
    return [f"{FACES_SK_PREFIX}{sequencer}#{index:04d}" for index in range(count)]
