"""The compact encoding of FaceDetails in the results table ("FPF1"): exact, small, cheap to write.

Rekognition's numbers are 32-bit floats (the API model types them `float`), printed as 17-digit doubles in its
JSON; stored as DynamoDB numbers they cost ~350 KB (350 write units) for 100 faces with Attributes=ALL. Here
the structure (keys, strings, booleans, integers) is JSON with every float replaced by `null`, the floats are
packed after it as float32 (or float64 for a chunk holding any value float32 cannot carry exactly), and the
whole is zlib-compressed into one binary attribute:

    zlib( b"FPF1" | u32 structure length | u32 float count | u8 float width (4 or 8)
          | structure JSON (UTF-8) | floats, little-endian, in document order )

A `null` in the structure is the next float; a string starting with U+0000 is escaped: "\\0" + "n" is a real
null, "\\0" + rest is the string rest. Reading it back gives the very values Rekognition returned. How to read
a result without this code is in docs/DESIGN.md ("Results (DynamoDB)"), and tested.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

MAGIC = b"FPF1"
HEADER = struct.Struct("<4sIIB")
ESCAPE = "\0"
NULL = ESCAPE + "n"
ENCODING = "FPF1+zlib"  # the value of a chunk's `encoding` attribute
FLOAT32_BYTES, FLOAT64_BYTES = 4, 8  # the float widths a chunk may have


def encode(faces: list[dict[str, Any]]) -> bytes:
    floats: list[float] = []
    append = floats.append

    def strip(value: Any) -> Any:
        # Dicts and lists hold the bulk; floats are collected in the order the decoder will meet their nulls.
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, float):
            append(value)
            return None
        if isinstance(value, list):
            return [strip(v) for v in value]
        if value is None:
            return NULL
        if isinstance(value, str) and value.startswith(ESCAPE):
            return ESCAPE + value
        return value

    structure = json.dumps(strip(faces), separators=(",", ":"), ensure_ascii=False).encode()
    count = len(floats)
    try:
        narrow = struct.pack(f"<{count}f", *floats)
        width = FLOAT32_BYTES if list(struct.unpack(f"<{count}f", narrow)) == floats else FLOAT64_BYTES
    except OverflowError:  # beyond float32's range
        width = FLOAT64_BYTES
    numbers = narrow if width == FLOAT32_BYTES else struct.pack(f"<{count}d", *floats)
    return zlib.compress(HEADER.pack(MAGIC, len(structure), count, width) + structure + numbers, 6)


def decode(blob: bytes) -> list[dict[str, Any]]:
    raw = zlib.decompress(blob)
    magic, size, count, width = HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise ValueError(f"not an FPF1 face chunk (starts with {magic!r})")
    structure = json.loads(raw[HEADER.size : HEADER.size + size])
    numbers = iter(struct.unpack_from(f"<{count}{'f' if width == FLOAT32_BYTES else 'd'}", raw, HEADER.size + size))

    def fill(value: Any) -> Any:
        if value is None:
            return next(numbers)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, str) and value.startswith(ESCAPE):
            return None if value == NULL else value[1:]
        return value

    faces: list[dict[str, Any]] = fill(structure)
    return faces
