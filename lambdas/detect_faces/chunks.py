"""Face chunks: the FaceDetails of one result, split into items that stay far below DynamoDB's 400 KB item limit
(100 faces with Attributes=ALL store completely), keyed FACES#<sequencer>#<nnnn>, and read back from every format
ever written (docs/DESIGN.md, "Results (DynamoDB)")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .contract import FACES_SK_PREFIX
from .faces import decode as decode_faces
from .faces import encode as encode_faces

# One chunk's blob stays far below DynamoDB's 400 KB item limit.
MAX_CHUNK_BYTES = 300_000
FACES_BLOB = "faces_fpf1"  # a chunk's FaceDetails, FPF1-encoded (faces.py)


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


def chunk_keys(sequencer: str, count: int) -> list[str]:
    """The sort keys of a result's face chunks: FACES#<sequencer>#0000, #0001, ..."""
    return [f"{FACES_SK_PREFIX}{sequencer}#{index:04d}" for index in range(count)]
