"""Redacted copies (docs/REDACTION.md): the right pixels, in outcome order, and an outcome for every failure.

The results are written by the real detect function (on moto, with CenterFace's faces as its DetectFaces answer),
the outcome events are made from its writes by the events function's own code, and the redaction function is
invoked with them; the copies are checked with the same offline detector (tests/function/redaction_helpers.py)."""

from __future__ import annotations

import io
import itertools
import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from botocore.exceptions import ClientError
from PIL import Image, ImageCms
from PIL.PngImagePlugin import PngInfo

from facepipe.common import photos
from facepipe.local.centerface import CenterFaceDetector
from redaction import handler as redaction_handler
from redaction.copies import META_FINISHED_AT, META_SEQUENCER, CopyContended
from redaction.outcomes import Stamp
from redaction.processor import SETTLE_DELAYS
from redaction.redact import (
    JPEG_QUALITY,
    Box,
    InvalidFaceDetail,
    Mode,
    UnsupportedImageFormat,
    face_boxes,
    redact_image,
    widened,
)
from redaction.settings import ConfigurationError, RedactionSettings, max_pixels_for
from tests.function.redaction_helpers import REDACTED, Mirror, decoded, make_mirror, rgb_of
from tests.helpers import BUCKET, JPEG_BYTES, REGION, TABLE, Pipeline, fail_calls

pytestmark = pytest.mark.integration

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
# JPEG: the mean absolute difference (0-255) between source and copy over the pixels outside the widened boxes, from
# one more encoding at quality 90. Measured on these sources: 0.02-0.77 (docs/REDACTION.md, "The copy's format").
JPEG_TOLERANCE = 2.0


@pytest.fixture
def mirror(pipeline: Pipeline, detector: CenterFaceDetector) -> Iterator[Mirror]:
    limit = Image.MAX_IMAGE_PIXELS  # the function sets Pillow's limit for its process: put it back for the others
    yield make_mirror(pipeline, detector)
    redaction_handler.set_redactor(None)
    Image.MAX_IMAGE_PIXELS = limit


# ---- sources: the bundled photos, and the forms a face can take in a PNG or a JPEG ----------------------------
def _png(image: Image.Image, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", **options)
    return out.getvalue()


def _photo(name: str) -> Image.Image:
    return Image.open(io.BytesIO(photos.photo(name)))


def _sixteen_bit(name: str) -> bytes:
    grey = np.asarray(_photo(name).convert("L")).astype(np.uint16) * 257
    return _png(Image.fromarray(grey))


def _with_alpha(name: str) -> bytes:
    image = _photo(name).convert("RGBA")
    alpha = np.full((image.height, image.width), 255, np.uint8)
    alpha[: image.height // 8] = 96  # a translucent band, away from the face
    image.putalpha(Image.fromarray(alpha))
    return _png(image)


def _palette(name: str) -> bytes:
    image = _photo(name).convert("RGB").quantize(255)
    return _png(image, transparency=254)


GROUP = ["astronaut.jpg", "camera.jpg", "grace_hopper.jpg", "coffee.jpg"]
SOURCES: dict[str, Callable[[], bytes]] = {
    "astronaut.jpg": lambda: photos.photo("astronaut.jpg"),
    "camera.jpg": lambda: photos.photo("camera.jpg"),  # greyscale JPEG
    "grace_hopper.jpg": lambda: photos.photo("grace_hopper.jpg"),
    "group.jpg": lambda: photos.composite(GROUP, fmt="JPEG"),
    "group.png": lambda: photos.composite(GROUP, fmt="PNG"),
    "sideways.jpg": lambda: photos.rotated_with_exif("grace_hopper.jpg"),  # stored turned, EXIF Orientation 6
    "translucent.png": lambda: _with_alpha("astronaut.jpg"),
    "sixteen-bit.png": lambda: _sixteen_bit("grace_hopper.jpg"),
    "palette.png": lambda: _palette("grace_hopper.jpg"),
}


def comparable(source: bytes, copy: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The source's pixels (upright, as Rekognition sees them) and the copy's, in the copy's mode."""
    before, after = decoded(source), decoded(copy)
    if before.mode != after.mode:
        before = before.convert(after.mode)
    return np.asarray(before).astype(np.int32), np.asarray(after).astype(np.int32)


def box_mask(shape: tuple[int, ...], boxes: list[Box]) -> np.ndarray:
    mask = np.zeros(shape[:2], bool)
    for box in boxes:
        mask[box.top : box.bottom, box.left : box.right] = True
    return mask


def found(detector: CenterFaceDetector, body: bytes) -> int:
    return len(detector.detect(rgb_of(decoded(body))))


def check_failure_record(body: dict[str, Any], event: dict[str, Any], error_type: str) -> None:
    """One DLQ message of the usual shape: Lambda's on-failure destination record, the event as its payload."""
    schema = json.loads((SCHEMAS / "failure-record.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(body)
    assert body["responsePayload"]["errorType"] == error_type
    assert body["requestPayload"] == event
    assert body["requestContext"]["functionArn"].endswith(":function:redaction")
    assert body["requestContext"]["condition"] == "NonRetryableError"


# ==== 1. the right pixels =============================================================================================
@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("name", list(SOURCES))
def test_no_face_centerface_found_is_left_in_any_copy_and_nothing_else_changes(
    mirror: Mirror, detector: CenterFaceDetector, name: str, mode: Mode
) -> None:
    # Given an image in which CenterFace finds faces, stored by the detect function as Rekognition's FaceDetails
    source = SOURCES[name]()
    faces = mirror.faces(source)
    assert len(faces) >= 1, f"CenterFace finds no face in {name}: the test would prove nothing"
    mirror.configure(mode=mode)
    (event,) = mirror.detect(name, source, faces=faces)

    # When the redaction function gets its Faces Detected event
    answer = mirror.redact(event)

    # Then the copy holds no face CenterFace can find
    assert answer["action"] == "written", answer
    copy = mirror.copy(name)
    assert copy is not None
    body, metadata = copy
    assert found(detector, body) == 0
    # and it is the source's format, upright, with its size
    assert Image.open(io.BytesIO(body)).format == ("PNG" if name.endswith(".png") else "JPEG")
    before, after = comparable(source, body)
    assert before.shape == after.shape
    # and outside the widened boxes the pixels are the source's: exactly (PNG), or within one JPEG encoding
    boxes = face_boxes(faces, after.shape[1], after.shape[0], mirror.settings.margin)
    outside = ~box_mask(after.shape, boxes)
    if name.endswith(".png"):
        assert np.array_equal(before[outside], after[outside])
    else:
        assert np.abs(before[outside] - after[outside]).mean() <= JPEG_TOLERANCE
    # while every box changed
    for box in boxes:
        region = (slice(box.top, box.bottom), slice(box.left, box.right))
        assert np.abs(before[region] - after[region]).mean() > 5
    assert metadata["facepipe-redaction"] == f"{mode.value} margin=0.15 faces={len(faces)}"


@pytest.mark.parametrize("name", ["coffee.jpg", "rocket.png"])
def test_an_image_without_faces_is_copied_as_it_is(mirror: Mirror, name: str) -> None:
    # Given an image the detect function found no face in
    photo = photos.photo(name.replace(".png", ".jpg"))
    source = _png(_photo(name.replace(".png", ".jpg"))) if name.endswith(".png") else photo
    (event,) = mirror.detect(name, source, faces=[])
    assert event["detail"]["face_count"] == 0

    # When it is redacted
    assert mirror.redact(event)["action"] == "written"

    # Then the mirror holds it too, its pixels the source's (PNG exactly; JPEG within one encoding)
    copy = mirror.copy(name)
    assert copy is not None
    before, after = comparable(source, copy[0])
    if name.endswith(".png"):
        assert np.array_equal(before, after)
    else:
        assert np.abs(before - after).mean() <= JPEG_TOLERANCE


def test_a_jpeg_copy_is_written_at_quality_90_with_the_standard_tables() -> None:
    # Given a photo saved at quality 75 and another at 98
    image = _photo("grace_hopper.jpg")
    reference = io.BytesIO()
    image.save(reference, format="JPEG", quality=JPEG_QUALITY)
    tables = Image.open(reference).quantization  # type: ignore[attr-defined]
    for quality in (75, 98):
        source = io.BytesIO()
        image.save(source, format="JPEG", quality=quality)
        # When each is redacted
        copy = redact_image(source.getvalue(), [], mode=Mode.BLUR, margin=0.15, max_pixels=10**8)
        # Then both are written with libjpeg's quality-90 tables: none of the source's (a fingerprint of its writer)
        assert Image.open(io.BytesIO(copy.body)).quantization == tables  # type: ignore[attr-defined]


# ---- EXIF orientation ------------------------------------------------------------------------------------------
# What PIL's exif_transpose does to display a stored image with each Orientation value, and its inverse: how a
# camera stores an upright scene under that tag.
DISPLAY = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
INVERSE = {
    Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270,
}
FACE_BOX = {"Left": 0.6, "Top": 0.15, "Width": 0.2, "Height": 0.35}  # relative to the upright image


def scene(width: int = 320, height: int = 200) -> Image.Image:
    """An upright scene whose every region differs from the others: two gradients and a smooth ripple."""
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    ripple = 128 + 60 * np.sin(x / 7) * np.cos(y / 11)
    pixels = np.stack([x * 255 // width, y * 255 // height, ripple], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels)


def stored_with_orientation(upright: Image.Image, orientation: int) -> bytes:
    stored = upright
    if orientation in DISPLAY:
        method = DISPLAY[orientation]
        stored = upright.transpose(INVERSE.get(method, method))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    stored.save(out, format="JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.unit
@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_jpegs_exif_orientation_is_applied_before_the_boxes(orientation: int) -> None:
    # Given an upright scene stored turned or mirrored, with the EXIF Orientation that shows it upright, and a face
    # box relative to the upright scene (as Rekognition gives it for a JPEG)
    upright = scene()
    source = stored_with_orientation(upright, orientation)

    # When it is redacted with a fill and no margin
    copy = redact_image(source, [{"BoundingBox": FACE_BOX}], mode=Mode.FILL, margin=0.0, max_pixels=10**8)

    # Then the copy is upright (no orientation tag left to apply) and black exactly where the face is upright
    image = Image.open(io.BytesIO(copy.body))
    assert image.size == upright.size
    assert not image.getexif()
    (box,) = copy.boxes
    assert box == Box(192, 30, 256, 100)
    before, after = comparable(source, copy.body)
    inside = box_mask(after.shape, [box])
    assert after[inside].mean() < 4
    assert np.abs(before[~inside] - after[~inside]).mean() <= JPEG_TOLERANCE
    # and the source, turned upright, is the scene: the box is where the face is in what a viewer shows
    assert np.abs(before - np.asarray(upright).astype(np.int32)).mean() <= JPEG_TOLERANCE


@pytest.mark.unit
def test_a_pngs_pixels_are_used_as_stored_whatever_its_exif_says() -> None:
    # Given a PNG with an eXIf chunk saying Orientation 6: Rekognition applies no orientation to a PNG
    stored = scene()
    exif = Image.Exif()
    exif[0x0112] = 6
    source = _png(stored, exif=exif.tobytes())
    assert Image.open(io.BytesIO(source)).getexif()[0x0112] == 6
    # When it is redacted
    copy = redact_image(source, [{"BoundingBox": FACE_BOX}], mode=Mode.FILL, margin=0.0, max_pixels=10**8)
    # Then the box is where it is in the stored pixels, and the copy keeps them (without the chunk)
    image = Image.open(io.BytesIO(copy.body))
    assert image.size == stored.size
    assert "exif" not in image.info
    after = np.asarray(image).astype(np.int32)
    inside = box_mask(after.shape, copy.boxes)
    assert (after[inside] == 0).all()
    assert np.array_equal(after[~inside], np.asarray(stored).astype(np.int32)[~inside])


# ---- the margin --------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_a_box_is_widened_by_the_margin_on_each_side_rounded_outwards_and_clamped() -> None:
    # 15 % of the box's width on the left and on the right, 15 % of its height at the top and at the bottom
    box = {"Left": 0.25, "Top": 0.5, "Width": 0.2, "Height": 0.1}
    assert widened(box, 1000, 1000, 0.15) == Box(220, 485, 480, 615)
    assert widened(box, 1000, 1000, 0.0) == Box(250, 500, 450, 600)
    # rounded outwards: a box's edge inside a pixel takes the pixel
    assert widened({"Left": 0.1004, "Top": 0.1, "Width": 0.1, "Height": 0.1}, 1000, 100, 0.0) == Box(100, 10, 201, 20)
    # Rekognition's boxes may extend past the image: clamped to it
    assert widened({"Left": -0.1, "Top": 0.9, "Width": 0.3, "Height": 0.3}, 100, 100, 0.15) == Box(0, 85, 25, 100)
    # a box wholly outside the image hides nothing
    assert widened({"Left": 1.2, "Top": 0.1, "Width": 0.1, "Height": 0.1}, 100, 100, 0.15) is None


@pytest.mark.unit
@pytest.mark.parametrize(
    "face",
    [
        {"Confidence": 99.0},
        {"BoundingBox": {"Left": 0.1, "Top": 0.1, "Width": 0.2}},
        {"BoundingBox": {"Left": 0.1, "Top": 0.1, "Width": float("nan"), "Height": 0.2}},
        {"BoundingBox": {"Left": 0.1, "Top": 0.1, "Width": -0.2, "Height": 0.2}},
    ],
)
def test_a_face_without_a_usable_box_stops_the_copy(face: dict[str, Any]) -> None:
    # A copy with a face left in it would be worse than no copy
    with pytest.raises(InvalidFaceDetail):
        face_boxes([face], 100, 100, 0.15)


# ---- no metadata of the original ----------------------------------------------------------------------------------
SECRETS = [b"FacepipeSecretCam", b"Secret-Model-9", b"Jane Q. Secret", b"secret comment", b"SecretCaption"]
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>Jane Q. Secret</dc:creator>'
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
)


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "FacepipeSecretCam"  # Make
    exif[0x0110] = "Secret-Model-9"  # Model
    exif[0x0132] = "2026:11:28 12:00:00"  # DateTime
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (52.0, 22.0, 1.5), 3: "E", 4: (4.0, 53.0, 2.0)})
    return exif


def _icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _segments(jpeg: bytes) -> list[tuple[int, bytes]]:
    """A JPEG's markers up to the scan, with the first bytes of each segment."""
    found, at = [], 2
    while at < len(jpeg) and jpeg[at + 1] != 0xDA:
        marker, length = jpeg[at + 1], int.from_bytes(jpeg[at + 2 : at + 4], "big")
        found.append((marker, jpeg[at + 4 : at + 4 + min(length - 2, 14)]))
        at += 2 + length
    return found


def jpeg_with_everything() -> bytes:
    """A face photo carrying EXIF (camera, time, GPS), XMP, an ICC profile, a comment and an IPTC (APP13) block."""
    out = io.BytesIO()
    _photo("grace_hopper.jpg").save(
        out, format="JPEG", quality=95, exif=_exif().tobytes(), xmp=XMP, icc_profile=_icc(), comment=b"secret comment"
    )
    iptc = b"\x1c\x02\x78" + struct.pack(">H", 13) + b"SecretCaption"
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    app13 = b"Photoshop 3.0\x00" + resource
    data = out.getvalue()
    return data[:2] + b"\xff\xed" + struct.pack(">H", len(app13) + 2) + app13 + data[2:]


def png_with_everything() -> bytes:
    """A face photo carrying text, compressed text, XMP, EXIF, an ICC profile, a time, gamma and a resolution."""
    info = PngInfo()
    info.add_text("Author", "Jane Q. Secret")
    info.add_text("Comment", "secret comment", zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    info.add(b"tIME", struct.pack(">HBBBBB", 2026, 11, 28, 12, 0, 0))
    info.add(b"gAMA", struct.pack(">I", 45455))
    return _png(_photo("grace_hopper.jpg"), pnginfo=info, exif=_exif().tobytes(), icc_profile=_icc(), dpi=(300, 300))


def test_a_jpeg_copy_carries_nothing_of_the_originals_metadata(mirror: Mirror) -> None:
    # Given a JPEG carrying every kind of metadata (checked: PIL reads each of them back)
    source = jpeg_with_everything()
    opened = Image.open(io.BytesIO(source))
    assert opened.getexif().get_ifd(0x8825)[1] == "N"
    assert {"exif", "xmp", "icc_profile", "comment"} <= set(opened.info)
    assert any(marker == "APP13" for marker, _ in opened.applist)  # type: ignore[attr-defined]

    # When it is redacted
    (event,) = mirror.detect("everything.jpg", source)
    mirror.redact(event)

    # Then the copy holds the JFIF header, tables and the scan: no APPn but APP0, no comment
    copy = mirror.copy("everything.jpg")
    assert copy is not None
    body = copy[0]
    markers = {marker for marker, _ in _segments(body)}
    assert markers <= {0xE0, 0xDB, 0xC0, 0xC4}, sorted(hex(m) for m in markers)
    assert not any(secret in body for secret in SECRETS)
    image = Image.open(io.BytesIO(body))
    assert not image.getexif()
    assert not {"exif", "xmp", "icc_profile", "comment", "photoshop"} & set(image.info)


def test_an_mpo_copy_is_one_image_its_second_unredacted_image_dropped(mirror: Mirror) -> None:
    # Given an MPO (a phone's JPEG with a second image after the first): here an unredacted close-up of the face
    photo = _photo("grace_hopper.jpg")
    out = io.BytesIO()
    photo.save(out, format="MPO", save_all=True, append_images=[photo.crop((150, 100, 370, 360))])
    source = out.getvalue()
    assert Image.open(io.BytesIO(source)).n_frames == 2  # type: ignore[attr-defined]

    # When it is redacted
    (event,) = mirror.detect("phone.jpg", source)
    mirror.redact(event)

    # Then the copy is one plain JPEG: no multi-picture (APP2 MPF) header, no second image
    copy = mirror.copy("phone.jpg")
    assert copy is not None
    image = Image.open(io.BytesIO(copy[0]))
    assert image.format == "JPEG"
    assert getattr(image, "n_frames", 1) == 1
    assert copy[0].count(b"\xff\xd8\xff") == 1
    assert 0xE2 not in {marker for marker, _ in _segments(copy[0])}


def test_a_png_copy_carries_nothing_of_the_originals_metadata(mirror: Mirror) -> None:
    # Given a PNG carrying text, compressed text, XMP, EXIF, an ICC profile, a time, gamma and a resolution
    source = png_with_everything()
    chunks = png_chunks(source)
    assert {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP", b"tIME", b"gAMA", b"pHYs"} <= set(chunks)

    # When it is redacted
    (event,) = mirror.detect("everything.png", source)
    mirror.redact(event)

    # Then the copy holds its header, the pixels and the end: nothing else
    copy = mirror.copy("everything.png")
    assert copy is not None
    assert set(png_chunks(copy[0])) <= {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
    assert not any(secret in copy[0] for secret in SECRETS)


def png_chunks(png: bytes) -> list[bytes]:
    found, at = [], 8
    while at < len(png):
        length = int.from_bytes(png[at : at + 4], "big")
        found.append(png[at + 4 : at + 8])
        at += 12 + length
    return found


# ==== 2. outcome order: the copy of the current version, or no copy ===================================================
def redact_all(mirror: Mirror, events: list[dict[str, Any]]) -> list[str]:
    return [mirror.redact(event)["action"] for event in events]


def clear_copy(mirror: Mirror, key: str) -> None:
    mirror.s3.delete_object(Bucket=mirror.settings.bucket, Key=f"{BUCKET}/{key}")


def test_a_late_older_event_never_overwrites_a_newer_copy(mirror: Mirror) -> None:
    # Given two versions of an image, each detected in turn
    first = mirror.detect("team.jpg", photos.photo("astronaut.jpg"))
    second = mirror.detect("team.jpg", photos.photo("grace_hopper.jpg"))
    version_2 = second[0]["detail"]["version_id"]

    # When the newer outcome's event arrives first, the older one late (and again, as Lambda's retry)
    assert redact_all(mirror, second + first + first) == ["written", "skipped", "skipped"]

    # Then the copy is the newer version's
    assert mirror.copy_version("team.jpg") == version_2


@pytest.mark.parametrize(
    "story",
    ["replaced twice", "deleted", "deleted then uploaded again", "replaced by a rejected upload", "rolled back"],
)
def test_every_order_of_an_images_events_ends_with_the_copy_of_its_current_version_or_none(
    mirror: Mirror, story: str
) -> None:
    # Given an image's story, told by the detect function, and the outcome events it produced
    astronaut, hopper, camera = (photos.photo(n) for n in ("astronaut.jpg", "grace_hopper.jpg", "camera.jpg"))
    key = "story.jpg"
    events = mirror.detect(key, astronaut)
    expected: str | None
    if story == "replaced twice":
        events += mirror.detect(key, hopper)
        events += mirror.detect(key, camera)
        expected = events[-1]["detail"]["version_id"]
    elif story == "deleted":
        events += mirror.delete(key)
        expected = None
    elif story == "deleted then uploaded again":
        events += mirror.delete(key)
        events += mirror.detect(key, hopper)
        expected = events[-1]["detail"]["version_id"]
    elif story == "replaced by a rejected upload":
        events += mirror.reject(key, JPEG_BYTES)
        expected = None
    else:  # the newer version deleted for good: the older one is current again and analysed again
        expected = events[0]["detail"]["version_id"]
        events += mirror.detect(key, hopper)
        events += mirror.delete_version(key, events[-1]["detail"]["version_id"], then=astronaut)
        assert [e["detail-type"] for e in events[-2:]] == ["Image Deleted", "Faces Detected"]
    # When the redaction function gets them in every order (each a Lambda retry too)
    for order in itertools.permutations(events):
        clear_copy(mirror, key)
        redact_all(mirror, [*order, *order])
        # Then the copy is the current version's, made from the current outcome, or there is none
        assert mirror.copy_version(key) == expected, [e["detail-type"] for e in order]
        if expected is not None:
            copy = mirror.copy(key)
            assert copy is not None
            assert Stamp(copy[1][META_SEQUENCER], copy[1][META_FINISHED_AT]) == Stamp(
                events[-1]["detail"]["sequencer"], events[-1]["detail"]["finished_at"]
            )


def test_a_versioned_redaction_bucket_keeps_the_same_order(mirror: Mirror) -> None:
    # Given copies kept in an existing, versioned bucket (facepipe:redactionBucket), where a delete leaves a marker
    from facepipe.local import aws as local_aws

    local_aws.create_bucket(mirror.s3, "versioned-copies", REGION, versioned=True)
    mirror.configure(bucket="versioned-copies")
    created = mirror.detect("again.jpg", photos.photo("astronaut.jpg"))
    deleted = mirror.delete("again.jpg")
    again = mirror.detect("again.jpg", photos.photo("grace_hopper.jpg"))
    # When the events arrive as created, deleted, created again, then late and retried
    redact_all(mirror, created + deleted + again + created + deleted)
    # Then the copy is the new version's: written over the delete marker (IfNoneMatch), never removed by the old delete
    assert mirror.copy_version("again.jpg") == again[0]["detail"]["version_id"]


def test_a_delete_before_the_create_leaves_no_copy_and_a_redrive_of_the_create_changes_nothing(mirror: Mirror) -> None:
    # Given an image uploaded and deleted, whose deletion's event reaches the redaction function first
    created = mirror.detect("gone.jpg", photos.photo("astronaut.jpg"))
    deleted = mirror.delete("gone.jpg")
    assert redact_all(mirror, deleted + created) == ["skipped", "skipped"]
    assert mirror.copy("gone.jpg") is None

    # When an operator redrives the old create event
    assert mirror.redact({**created[0], "facepipeRedrive": "redrive-1"})["action"] == "skipped"

    # Then there is still no copy
    assert mirror.copy("gone.jpg") is None


def test_a_redrive_of_an_old_event_keeps_the_newer_copy(mirror: Mirror) -> None:
    first = mirror.detect("kept.jpg", photos.photo("astronaut.jpg"))
    second = mirror.detect("kept.jpg", photos.photo("camera.jpg"))
    redact_all(mirror, first + second)
    assert mirror.redact({**first[0], "facepipeRedrive": "redrive-1"})["action"] == "skipped"
    assert mirror.copy_version("kept.jpg") == second[0]["detail"]["version_id"]


def test_rejected_and_failed_images_get_no_copy(mirror: Mirror) -> None:
    # A rejected upload is announced, and its event makes no copy (and removes none that is newer)
    (rejected,) = mirror.reject("bad.jpg", JPEG_BYTES)
    assert rejected["detail-type"] == "Image Rejected"
    assert mirror.redact(rejected)["action"] == "skipped"
    assert mirror.copy("bad.jpg") is None
    # An Image Failed event likewise (an unreadable object, dead-lettered by the detect function)
    failed = {**rejected, "detail-type": "Image Failed", "detail": {**rejected["detail"], "status": "DEAD_LETTERED"}}
    assert mirror.redact(failed)["action"] == "skipped"
    assert mirror.copy("bad.jpg") is None


def test_an_older_event_still_running_when_a_newer_copy_lands_does_not_overwrite_it(mirror: Mirror) -> None:
    # Given version 1's event being redacted while version 2 is uploaded, detected and redacted (during its GET)
    (first,) = mirror.detect("race.jpg", photos.photo("astronaut.jpg"))
    newer: list[dict[str, Any]] = []
    started: list[bool] = []

    def meanwhile(params: dict[str, Any], **_: Any) -> None:
        if params.get("Bucket") == BUCKET and not started:
            started.append(True)
            newer.extend(mirror.detect("race.jpg", photos.photo("grace_hopper.jpg")))
            assert mirror.redact(newer[0])["action"] == "written"

    mirror.s3.meta.events.register("provide-client-params.s3.GetObject", meanwhile)
    # When version 1's redaction goes on to store its copy
    answer = mirror.redact(first)
    # Then it finds the newer copy and leaves it
    assert answer["action"] == "skipped"
    assert answer["reason"] == "the copy is from a newer outcome"
    assert mirror.copy_version("race.jpg") == newer[0]["detail"]["version_id"]


def other_writer(mirror: Mirror, key: str, stamp: Stamp) -> Callable[..., None]:
    """A PutObject/DeleteObject hook that, once, writes a copy with `stamp` just before the function's own call:
    another invocation that got there between the function's HEAD and its write."""
    import boto3

    other = boto3.client("s3", region_name=REGION)  # not hooked
    done: list[bool] = []

    def write(params: dict[str, Any], **_: Any) -> None:
        if params.get("Bucket") == REDACTED and not done:
            done.append(True)
            metadata = {META_SEQUENCER: stamp.sequencer, META_FINISHED_AT: stamp.finished_at}
            other.put_object(Bucket=REDACTED, Key=key, Body=b"other writer", Metadata=metadata)

    return write


@pytest.mark.parametrize("existing", [False, True])
def test_a_copy_written_between_the_head_and_the_put_is_never_overwritten_by_an_older_outcome(
    mirror: Mirror, existing: bool
) -> None:
    # Given an outcome about to be stored, with (or without) an older copy there at the HEAD
    (event,) = mirror.detect("cas.jpg", photos.photo("astronaut.jpg"))
    key = f"{BUCKET}/cas.jpg"
    if existing:
        mirror.s3.put_object(Bucket=REDACTED, Key=key, Body=b"old", Metadata={META_SEQUENCER: "0" * 40})
    newer = Stamp("F" * 40, "2027-01-01T00:00:00.000Z")
    mirror.s3.meta.events.register("provide-client-params.s3.PutObject", other_writer(mirror, key, newer))
    # When another writer stores a newer copy between the function's HEAD and its PutObject (IfMatch / IfNoneMatch)
    answer = mirror.redact(event)
    # Then the conditional write fails, the function decides again, and the newer copy stays
    assert answer["action"] == "skipped"
    assert mirror.s3.get_object(Bucket=REDACTED, Key=key)["Body"].read() == b"other writer"


def test_a_copy_written_between_the_head_and_the_put_by_an_older_outcome_is_replaced(mirror: Mirror) -> None:
    (event,) = mirror.detect("cas2.jpg", photos.photo("astronaut.jpg"))
    key = f"{BUCKET}/cas2.jpg"
    older = Stamp("0" * 40, "2020-01-01T00:00:00.000Z")
    mirror.s3.meta.events.register("provide-client-params.s3.PutObject", other_writer(mirror, key, older))
    assert mirror.redact(event)["action"] == "written"
    assert mirror.copy_version("cas2.jpg") == event["detail"]["version_id"]


def test_a_copy_written_between_the_head_and_the_delete_by_a_newer_outcome_is_kept(mirror: Mirror) -> None:
    # Given a copy, and a deletion's event about to remove it
    created = mirror.detect("cad.jpg", photos.photo("astronaut.jpg"))
    redact_all(mirror, created)
    deleted = mirror.delete("cad.jpg")
    key = f"{BUCKET}/cad.jpg"
    newer = Stamp("F" * 40, "2027-01-01T00:00:00.000Z")
    mirror.s3.meta.events.register("provide-client-params.s3.DeleteObject", other_writer(mirror, key, newer))
    # When a newer copy lands between the function's HEAD and its DeleteObject (IfMatch)
    answer = mirror.redact(deleted[0])
    # Then the conditional delete fails, the function decides again, and the newer copy stays
    assert answer["action"] == "skipped"
    assert mirror.s3.get_object(Bucket=REDACTED, Key=key)["Body"].read() == b"other writer"


def test_a_concurrent_conditional_write_conflict_is_decided_again_and_one_that_keeps_losing_is_retried(
    mirror: Mirror,
) -> None:
    # S3 answers 409 ConditionalRequestConflict to one of two concurrent conditional writes (moto never does)
    (event,) = mirror.detect("conflict.jpg", photos.photo("astronaut.jpg"))
    fail_calls(mirror.s3, "PutObject", "ConditionalRequestConflict", {1})
    assert mirror.redact(event)["action"] == "written"
    # Losing every time fails the invocation (Lambda retries it): no copy is forced through
    (event,) = mirror.detect("conflict2.jpg", photos.photo("astronaut.jpg"))
    fail_calls(mirror.s3, "PutObject", "PreconditionFailed", {1, 2, 3, 4})
    with pytest.raises(CopyContended):
        mirror.redact(event)
    assert mirror.copy("conflict2.jpg") is None


# ==== 3. failures: one DLQ record each, or a retry ====================================================================
def test_a_version_gone_while_the_table_still_names_it_is_one_failure_record(mirror: Mirror) -> None:
    # Given a detected version deleted for good, whose removal the detect function has not seen
    (event,) = mirror.detect("vanished.jpg", photos.photo("astronaut.jpg"))
    mirror.s3.delete_object(Bucket=BUCKET, Key="vanished.jpg", VersionId=event["detail"]["version_id"])
    # When its event is redacted
    answer = mirror.redact(event)
    # Then the function waited for the table to move on, then sent one failure record; no copy
    assert answer["action"] == "dead_lettered"
    assert mirror.sleeps == list(SETTLE_DELAYS)
    (record,) = mirror.dlq()
    check_failure_record(record, event, "NoSuchVersion")
    assert mirror.copy("vanished.jpg") is None


def test_a_version_gone_whose_removal_reaches_the_table_meanwhile_is_skipped(mirror: Mirror) -> None:
    # Given a detected version deleted for good, whose removal the detect function handles while the redaction
    # function waits (its first pause)
    (event,) = mirror.detect("moved.jpg", photos.photo("astronaut.jpg"))
    version = event["detail"]["version_id"]
    mirror.s3.delete_object(Bucket=BUCKET, Key="moved.jpg", VersionId=version)
    removal: list[dict[str, Any]] = []

    def pause(seconds: float) -> None:
        mirror.sleeps.append(seconds)
        if not removal:
            removal.extend(mirror.delete_version("moved.jpg", version))

    mirror.redactor.sleep = pause
    # When its event is redacted
    answer = mirror.redact(event)
    # Then it is skipped: the deletion's own event decides the copy
    assert answer["action"] == "skipped"
    assert mirror.dlq() == []
    assert [e["detail-type"] for e in removal] == ["Image Deleted"]


def test_an_unversioned_object_replaced_before_the_copy_is_one_failure_record(mirror: Mirror) -> None:
    # Given an object in an unversioned bucket, detected, then overwritten before its copy is made
    from facepipe.local import aws as local_aws

    local_aws.create_bucket(mirror.s3, "plain-uploads", REGION, versioned=False)
    photo = photos.photo("astronaut.jpg")
    (event,) = mirror.detect("plain.jpg", photo, bucket="plain-uploads")
    assert event["detail"]["version_id"] is None
    mirror.s3.put_object(Bucket="plain-uploads", Key="plain.jpg", Body=photos.photo("coffee.jpg"))
    # When its event is redacted
    answer = mirror.redact(event)
    # Then the GET with IfMatch refuses the new object's pixels: a failure record, no copy
    assert answer["action"] == "dead_lettered"
    (record,) = mirror.dlq()
    check_failure_record(record, event, "PreconditionFailed")
    assert mirror.copy("plain.jpg", bucket="plain-uploads") is None


def test_an_unversioned_object_is_copied_while_its_etag_is_the_analysed_one(mirror: Mirror) -> None:
    from facepipe.local import aws as local_aws

    local_aws.create_bucket(mirror.s3, "plain-uploads", REGION, versioned=False)
    (event,) = mirror.detect("plain.jpg", photos.photo("astronaut.jpg"), bucket="plain-uploads")
    assert mirror.redact(event)["action"] == "written"
    copy = mirror.copy("plain.jpg", bucket="plain-uploads")
    assert copy is not None
    assert copy[1]["facepipe-source-version-id"] == "null"


@pytest.mark.parametrize(
    ("what", "body", "error_type"),
    [
        ("a JPEG header and nothing else", JPEG_BYTES, "CorruptImage"),
        ("a truncated JPEG", photos.photo("astronaut.jpg")[:20_000], "CorruptImage"),
    ],
)
def test_an_image_that_cannot_be_decoded_is_one_failure_record(
    mirror: Mirror, what: str, body: bytes, error_type: str
) -> None:
    # Given an object Rekognition analysed but Pillow cannot decode
    (event,) = mirror.detect("broken.jpg", body, faces=[{"BoundingBox": FACE_BOX, "Confidence": 99.0}])
    # When its event is redacted
    assert mirror.redact(event)["action"] == "dead_lettered", what
    # Then one failure record says why, and there is no copy
    (record,) = mirror.dlq()
    check_failure_record(record, event, error_type)
    assert mirror.copy("broken.jpg") is None


def test_an_image_larger_than_the_memory_rule_allows_is_one_failure_record(mirror: Mirror) -> None:
    # Given a function whose memory decodes 200,000 pixels, and a 512 x 512 photo
    (event,) = mirror.detect("big.jpg", photos.photo("astronaut.jpg"))
    mirror.configure(max_pixels=200_000)
    # When its event is redacted
    assert mirror.redact(event)["action"] == "dead_lettered"
    # Then it is refused before its pixels are decoded: one failure record, no copy
    (record,) = mirror.dlq()
    check_failure_record(record, event, "ImageTooLarge")
    assert "262,144 pixels" in record["responsePayload"]["errorMessage"]
    assert mirror.copy("big.jpg") is None


def test_a_stored_face_without_a_box_is_one_failure_record(mirror: Mirror) -> None:
    (event,) = mirror.detect("boxless.jpg", photos.photo("astronaut.jpg"), faces=[{"Confidence": 99.0}])
    assert mirror.redact(event)["action"] == "dead_lettered"
    (record,) = mirror.dlq()
    check_failure_record(record, event, "InvalidFaceDetail")
    assert mirror.copy("boxless.jpg") is None


@pytest.mark.parametrize(
    "event",
    [
        {"source": "aws.s3", "detail-type": "Object Created", "detail": {}},
        {"source": "facepipe", "detail-type": "Faces Found", "detail": {}},
        {"source": "facepipe", "detail-type": "Faces Detected", "detail": {"bucket": "b", "key": "k"}},
        {"source": "facepipe", "detail-type": "Image Deleted",
         "detail": {"bucket": "b", "key": "k", "sequencer": "55b1", "finished_at": "2026-11-28T12:00:00.000Z"}},
    ],
)  # fmt: skip
def test_an_event_that_is_not_an_outcome_event_is_one_failure_record(mirror: Mirror, event: dict[str, Any]) -> None:
    assert mirror.redact(event)["action"] == "dead_lettered"
    (record,) = mirror.dlq()
    check_failure_record(record, event, "InvalidOutcomeEvent")


def test_a_source_key_too_long_for_a_copy_key_is_one_failure_record(mirror: Mirror) -> None:
    key = "k" * 1020 + ".jpg"  # S3 takes it; "uploads/" + it is longer than 1024 bytes
    (event,) = mirror.detect(key, photos.photo("astronaut.jpg"))
    assert mirror.redact(event)["action"] == "dead_lettered"
    (record,) = mirror.dlq()
    check_failure_record(record, event, "CopyKeyTooLong")


@pytest.mark.parametrize(
    ("client", "operation", "code"),
    [
        ("s3", "GetObject", "SlowDown"),
        ("s3", "GetObject", "InternalError"),
        ("s3", "PutObject", "ServiceUnavailable"),
        ("s3", "HeadObject", "SlowDown"),
        ("dynamodb", "Query", "ProvisionedThroughputExceededException"),
    ],
)
def test_throttling_and_5xx_fail_the_invocation_for_lambdas_retry(
    mirror: Mirror, client: str, operation: str, code: str
) -> None:
    # Given an outcome whose redaction meets throttling or a 5xx that botocore's own retries did not outlast
    (event,) = mirror.detect("busy.jpg", photos.photo("astronaut.jpg"))
    fail_calls(getattr(mirror.pipeline.aws, client), operation, code, {1})
    # When its event is redacted, the invocation fails (Lambda retries it): no failure record, no copy
    with pytest.raises(ClientError):
        mirror.redact(event)
    assert mirror.dlq() == []
    assert mirror.copy("busy.jpg") is None
    # and Lambda's retry makes the copy
    assert mirror.redact(event)["action"] == "written"


def test_a_copy_of_a_copy_is_never_made(mirror: Mirror) -> None:
    (event,) = mirror.detect("loop.jpg", photos.photo("astronaut.jpg"))
    looped = {**event, "detail": {**event["detail"], "bucket": REDACTED, "pk": f"{REDACTED}/loop.jpg"}}
    assert mirror.redact(looped)["action"] == "skipped"


# ==== 4. settings and the memory rule =================================================================================
ENV = {"REDACTION_BUCKET": REDACTED, "RESULTS_TABLE": TABLE, "FAILURE_QUEUE_URL": "https://sqs.example/q"}


@pytest.mark.unit
def test_the_pixel_limit_follows_the_functions_memory_size() -> None:
    # (memory - 128 MB) / 10 bytes per pixel
    assert max_pixels_for(1024) == 93_952_409
    assert max_pixels_for(2048) == 201_326_592
    assert max_pixels_for(128) == 1_000_000  # never below a megapixel
    settings = RedactionSettings.from_env({**ENV, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769"})
    assert settings.max_pixels == max_pixels_for(1769)
    assert RedactionSettings.from_env(ENV).mode is Mode.BLUR
    assert RedactionSettings.from_env(ENV).margin == 0.15


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("REDACTION_MODE", "off", "REDACTION_MODE must be one of blur, pixelate, fill"),
        ("REDACTION_MARGIN", "15", "REDACTION_MARGIN must be a fraction from 0 to 1.0"),
        ("REDACTION_MARGIN", "nan", "REDACTION_MARGIN must be a fraction"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1 GB", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE must be a number of MB"),
        ("REDACTION_BUCKET", "", "REDACTION_BUCKET is required"),
    ],
)
def test_a_bad_setting_is_named_at_cold_start(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RedactionSettings.from_env({**ENV, name: value})


@pytest.mark.unit
def test_settings_read_back_from_the_environment_they_write() -> None:
    settings = RedactionSettings.from_env({**ENV, "REDACTION_MODE": "Pixelate", "REDACTION_MARGIN": "0.25"})
    assert (settings.mode, settings.margin) == (Mode.PIXELATE, 0.25)
    assert RedactionSettings.from_env(settings.to_env()) == settings


@pytest.mark.unit
def test_only_jpeg_and_png_are_redacted() -> None:
    out = io.BytesIO()
    _photo("astronaut.jpg").save(out, format="GIF")
    with pytest.raises(UnsupportedImageFormat):
        redact_image(out.getvalue(), [], mode=Mode.BLUR, margin=0.15, max_pixels=10**8)
