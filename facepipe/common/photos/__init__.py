"""Sample photos we may ship (see SOURCES.md beside this file), and scenes composed from them with known answers."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

SAMPLES = Path(__file__).resolve().parent  # the photos ship inside this package
FACES = {"astronaut.jpg": 1, "camera.jpg": 1, "grace_hopper.jpg": 1}
NO_FACES = {"coffee.jpg": 0, "chelsea.jpg": 0, "rocket.jpg": 0}


@dataclass(frozen=True)
class Sample:
    key: str
    body: bytes
    expected: str  # "faces:N" | "rejected:<reason code>"


def photo(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def composite(names: list[str], tile: int = 400, columns: int = 2, fmt: str = "PNG") -> bytes:
    """A grid of sample photos: its face count is the sum of theirs."""
    rows = (len(names) + columns - 1) // columns
    canvas = Image.new("RGB", (tile * columns, tile * rows), "white")
    for i, name in enumerate(names):
        img = Image.open(SAMPLES / name).convert("RGB")
        img.thumbnail((tile, tile))
        canvas.paste(img, ((i % columns) * tile, (i // columns) * tile))
    out = io.BytesIO()
    canvas.save(out, format=fmt)
    return out.getvalue()


def tiny_png(size: int = 64) -> bytes:
    img = Image.open(SAMPLES / "astronaut.jpg").convert("RGB").resize((size, size))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def rotated_with_exif(name: str, orientation: int = 6) -> bytes:
    """The photo stored sideways with an EXIF Orientation tag that turns it upright again.

    Orientation 6 means 'rotate 90° clockwise to display'; so the pixels are stored rotated 90° counter-
    clockwise. A viewer (and Rekognition) that honours EXIF sees the upright photo.
    """
    img = Image.open(SAMPLES / name).convert("RGB")
    stored = img.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    stored.save(out, format="JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def demo_set() -> list[Sample]:
    samples = [Sample(f"photos/{n}", photo(n), f"faces:{c}") for n, c in {**FACES, **NO_FACES}.items()]
    samples += [
        Sample("photos/Group Shot.PNG", composite(["astronaut.jpg", "camera.jpg", "grace_hopper.jpg", "coffee.jpg"]),
               "faces:3"),
        Sample("photos/sideways (EXIF).jpg", rotated_with_exif("grace_hopper.jpg"), "faces:1"),
        Sample("photos/notes.jpg", b"Not a photo: eggs, milk, bread.\n", "rejected:InvalidImageFormatException"),
        Sample("photos/thumbnail.png", tiny_png(), "rejected:InvalidParameterException"),
    ]  # fmt: skip
    return samples
