"""The right pixels: Rekognition's face boxes, widened and clamped, hidden in the decoded image, and the image
written again in its own format with none of the original's metadata (docs/REDACTION.md, "How it decides").

Everything here works on bytes and PIL images, with no AWS: the processor reads the object and the faces, this
module makes the copy. The order is fixed by what Rekognition's boxes mean:

1. decode, refusing an image larger than the memory rule allows (`max_pixels`) before its pixels are decoded;
2. JPEG only: apply the EXIF orientation (Rekognition's boxes are relative to the upright image of a JPEG, and to
   the stored pixels of a PNG, whose orientation it never applies);
3. bring the image to a mode every redaction works in (a palette image to RGB or RGBA, a 1-bit image to L,
   transparency to an alpha channel), with every pixel's colour unchanged;
4. widen each face's box by the margin, clamp it to the image, and hide it (blur, pixelate or fill), whatever the
   face's confidence;
5. encode: JPEG at JPEG_QUALITY with the standard tables, PNG losslessly; the image's `info` (EXIF, XMP, ICC
   profile, comments, text chunks...) is dropped, and no other frame (an MPO's second image, an APNG's frames) and
   no EXIF thumbnail is written, so no unredacted copy travels inside the file.
"""

from __future__ import annotations

import enum
import io
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError


class Mode(enum.StrEnum):
    """How a face is hidden."""

    BLUR = "blur"  # a Gaussian blur strong enough that a face detector finds nothing (BLUR_SIGMA)
    PIXELATE = "pixelate"  # PIXELATE_BLOCKS blocks across the box's longer side
    FILL = "fill"  # solid black: nothing of the face is left, for when re-identification is the threat


# The margin added to each side of a face's box, as a fraction of that box's width (left and right) and height (top
# and bottom): Rekognition's boxes are tight around the face and leave hair, ears and chin outside.
DEFAULT_MARGIN = 0.15
MAX_MARGIN = 1.0
# Blur: the Gaussian's standard deviation, as a fraction of the widened box's longer side. CenterFace (threshold 0.5)
# finds no face in a bundled photo blurred at 0.08 and up (0.15 with no margin): 0.2 leaves a margin
# (docs/REDACTION.md, "How strong").
BLUR_SIGMA = 0.2
MIN_BLUR_SIGMA = 2.0  # pixels: even a tiny face is blurred past recognition
# Pixelate: this many blocks across the widened box's longer side; CenterFace finds nothing from 16 down (12 with
# no margin).
PIXELATE_BLOCKS = 8
MIN_BLOCK_PIXELS = 2
# JPEG: quality 90 with libjpeg's standard tables and 4:2:0 chroma, baseline, no Huffman optimisation. The source's
# own tables would drift less but identify the camera or software that wrote it (tables are a forensic fingerprint).
JPEG_QUALITY = 90
# PNG: zlib's default level, the size the usual tools write. Level 1 encodes a photo ~2.5x faster but 8 % larger (a
# screenshot 40 % larger); a copy is stored for as long as the mirror keeps it, so the smaller file wins.
PNG_COMPRESS_LEVEL = 6
# The formats Rekognition reads, and what each is written as (an MPO is a JPEG with more images after the first).
OUTPUT_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG"}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
ORIENTED_FORMATS = frozenset({"JPEG", "MPO"})  # those whose EXIF orientation Rekognition applies
# Modes every redaction works in (PIL's GaussianBlur takes these); 16-bit greyscale is kept as it is too.
WORKING_MODES = frozenset({"L", "LA", "RGB", "RGBA", "CMYK"})
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L"})
BLACK: dict[str, int | tuple[int, ...]] = {
    "L": 0,
    "LA": (0, 255),
    "RGB": (0, 0, 0),
    "RGBA": (0, 0, 0, 255),
    "CMYK": (0, 0, 0, 255),
}
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError)


class ImageProblem(Exception):
    """The copy cannot be made from this image: a failure record says why (`code` is its errorType)."""

    code = "ImageProblem"


class ImageTooLarge(ImageProblem):
    code = "ImageTooLarge"


class CorruptImage(ImageProblem):
    code = "CorruptImage"


class UnsupportedImageFormat(ImageProblem):
    code = "UnsupportedImageFormat"


class InvalidFaceDetail(ImageProblem):
    """A stored face without a usable BoundingBox: no copy is safer than a copy with a face left in it."""

    code = "InvalidFaceDetail"


@dataclass(frozen=True)
class Box:
    """A region of pixels: left and top included, right and bottom excluded (PIL's order)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.right, self.bottom)


@dataclass
class Redacted:
    """A copy ready to store: its bytes, content type, size and the boxes hidden in it."""

    body: bytes
    content_type: str
    width: int
    height: int
    boxes: list[Box]
    source_format: str


def _coordinate(box: Mapping[str, Any], name: str) -> float:
    value = box.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidFaceDetail(f"BoundingBox.{name} is {value!r}, not a finite number")
    return float(value)


def widened(bounding_box: Mapping[str, Any], width: int, height: int, margin: float) -> Box | None:
    """A Rekognition BoundingBox (Left, Top, Width, Height: fractions of the image's width and height) as pixels of
    a `width` x `height` image, widened by `margin` x the box's width on the left and on the right and `margin` x
    its height at the top and at the bottom, rounded outwards to whole pixels and clamped to the image. None when
    nothing of it is inside the image. Rekognition may return a box that extends past the image's edges."""
    left, top = _coordinate(bounding_box, "Left"), _coordinate(bounding_box, "Top")
    box_width, box_height = _coordinate(bounding_box, "Width"), _coordinate(bounding_box, "Height")
    if box_width < 0 or box_height < 0:
        raise InvalidFaceDetail(f"BoundingBox has a negative size: {box_width!r} x {box_height!r}")
    x0 = math.floor((left - margin * box_width) * width)
    x1 = math.ceil((left + box_width + margin * box_width) * width)
    y0 = math.floor((top - margin * box_height) * height)
    y1 = math.ceil((top + box_height + margin * box_height) * height)
    box = Box(max(0, x0), max(0, y0), min(width, x1), min(height, y1))
    return box if box.width > 0 and box.height > 0 else None


def face_boxes(faces: Sequence[Mapping[str, Any]], width: int, height: int, margin: float) -> list[Box]:
    """The widened box of every face (Rekognition FaceDetails), whatever its confidence."""
    boxes = []
    for n, face in enumerate(faces):
        bounding_box = face.get("BoundingBox") if isinstance(face, Mapping) else None
        if not isinstance(bounding_box, Mapping):
            raise InvalidFaceDetail(f"face {n} has no BoundingBox")
        box = widened(bounding_box, width, height, margin)
        if box is not None:
            boxes.append(box)
    return boxes


def decode(data: bytes, max_pixels: int) -> Image.Image:
    """The image's pixels, loaded: a JPEG (or MPO, its first image) or a PNG (its default image). Its size is
    checked against `max_pixels` from the header, before anything is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, by our own limit
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from None
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"not a readable image: {exc}") from None
    if image.format not in OUTPUT_FORMATS:
        raise UnsupportedImageFormat(f"{image.format} is not a format Rekognition reads (JPEG, PNG)")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{width} x {height} = {width * height:,} pixels is more than the {max_pixels:,} this function's memory"
            " decodes (docs/REDACTION.md, 'The memory rule')"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(str(exc)) from None
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"{image.format} cannot be decoded: {exc}") from None
    return image


def upright(image: Image.Image, source_format: str) -> Image.Image:
    """The image as Rekognition's boxes see it: a JPEG's EXIF orientation applied (in place: no copy of an image
    that needs no turn), a PNG as stored. An EXIF block that cannot be read leaves the orientation unknown, and
    guessing it could put the boxes beside the faces: it is refused."""
    if source_format in ORIENTED_FORMATS:
        try:
            ImageOps.exif_transpose(image, in_place=True)
        except _DECODE_ERRORS as exc:
            raise CorruptImage(f"the EXIF orientation cannot be read: {exc}") from None
    return image


def working(image: Image.Image) -> Image.Image:
    """The image in a mode every redaction works in, every pixel's colour and opacity unchanged: 1-bit to L, a
    palette to RGB (RGBA when it has transparency), a transparent colour (tRNS) to an alpha channel. 16-bit
    greyscale stays 16-bit (its PNG stays lossless)."""
    mode = image.mode
    if mode in SIXTEEN_BIT_MODES or (mode in WORKING_MODES and "transparency" not in image.info):
        return image
    with_alpha = "transparency" in image.info or "A" in image.getbands()
    if mode in ("1", "L", "LA"):
        return image.convert("LA" if with_alpha else "L")
    return image.convert("RGBA" if with_alpha else "RGB")


def _blurred(region: Image.Image) -> Image.Image:
    sigma = max(MIN_BLUR_SIGMA, BLUR_SIGMA * max(region.size))
    if region.mode in WORKING_MODES:
        return region.filter(ImageFilter.GaussianBlur(sigma))
    # 16-bit greyscale, which PIL's filters do not take: the same low-pass by resampling (down by sigma, box
    # filter; up again, bicubic), so the image keeps its 16 bits outside the boxes.
    width, height = region.size
    factor = max(1.0, sigma)
    small = region.resize((max(1, round(width / factor)), max(1, round(height / factor))), Image.Resampling.BOX)
    return small.resize((width, height), Image.Resampling.BICUBIC)


def _pixelated(region: Image.Image) -> Image.Image:
    width, height = region.size
    block = max(MIN_BLOCK_PIXELS, math.ceil(max(width, height) / PIXELATE_BLOCKS))
    small = region.resize((math.ceil(width / block), math.ceil(height / block)), Image.Resampling.BOX)
    return small.resize((width, height), Image.Resampling.NEAREST)


def redact(image: Image.Image, boxes: Sequence[Box], mode: Mode) -> None:
    """Hide every box in the image, in place; pixels outside the boxes are not touched. Each box is processed
    from its own pixels only (a blur never pulls in a face beside it, and never smears a face outside)."""
    for box in boxes:
        if mode is Mode.FILL:
            image.paste(BLACK.get(image.mode, 0), box.as_tuple())
            continue
        region = image.crop(box.as_tuple())
        hidden = _blurred(region) if mode is Mode.BLUR else _pixelated(region)
        image.paste(hidden, (box.left, box.top))


def encode(image: Image.Image, source_format: str) -> tuple[bytes, str]:
    """The image in its source's format, and its content type. Nothing of the original's metadata is written:
    the image's `info` (where PIL keeps EXIF, XMP, the ICC profile, comments, PNG text chunks, gamma...) is
    emptied first, since PIL's writers copy some of it by default (a JPEG comment, a PNG ICC profile). Only a
    16-bit greyscale PNG's transparent value is kept: it is part of the pixels, not about them."""
    output_format = OUTPUT_FORMATS[source_format]
    transparency = image.info.get("transparency") if image.mode in SIXTEEN_BIT_MODES else None
    image.info = {}
    out = io.BytesIO()
    if output_format == "JPEG":
        image.save(out, format="JPEG", quality=JPEG_QUALITY)
    else:
        options: dict[str, Any] = {"compress_level": PNG_COMPRESS_LEVEL}
        if transparency is not None:
            options["transparency"] = transparency
        image.save(out, format="PNG", **options)
    return out.getvalue(), CONTENT_TYPES[output_format]


def redact_image(
    data: bytes, faces: Sequence[Mapping[str, Any]], *, mode: Mode, margin: float, max_pixels: int
) -> Redacted:
    """A redacted copy of an image (docs/REDACTION.md): decode, orient (JPEG), hide every face, encode."""
    image = decode(data, max_pixels)
    source_format = str(image.format)
    image = working(upright(image, source_format))
    boxes = face_boxes(faces, image.width, image.height, margin)
    redact(image, boxes, mode)
    body, content_type = encode(image, source_format)
    return Redacted(
        body=body,
        content_type=content_type,
        width=image.width,
        height=image.height,
        boxes=boxes,
        source_format=source_format,
    )
