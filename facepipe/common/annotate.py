"""Draw stored FaceDetails (boxes, landmarks, confidence) onto the image they describe."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw, ImageOps

COLOURS = ["#ff3b30", "#34c759", "#007aff", "#ff9500", "#af52de", "#5ac8fa"]


def annotate(image_bytes: bytes, faces: list[dict[str, Any]]) -> Image.Image:
    """Boxes are relative to the upright image (EXIF orientation applied), as Rekognition's are."""
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(image_bytes))).convert("RGB")
    width, height = img.size
    draw = ImageDraw.Draw(img)
    line = max(2, round(min(width, height) / 200))
    for i, face in enumerate(faces):
        colour = COLOURS[i % len(COLOURS)]
        box = face.get("BoundingBox", {})
        left, top = box.get("Left", 0.0) * width, box.get("Top", 0.0) * height
        right, bottom = left + box.get("Width", 0.0) * width, top + box.get("Height", 0.0) * height
        draw.rectangle((left, top, right, bottom), outline=colour, width=line)
        radius = line + 1
        for mark in face.get("Landmarks", []):
            x, y = mark["X"] * width, mark["Y"] * height
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
        label = f"{face.get('Confidence', 0.0):.1f}%"
        draw.text((left + line, max(0, top - 12 - line)), label, fill=colour)
    return img


def save(img: Image.Image, path: str) -> None:
    fmt = "JPEG" if path.lower().endswith((".jpg", ".jpeg")) else "PNG"
    img.save(path, format=fmt)
