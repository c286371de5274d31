"""Cheap checks of the S3 object before a Rekognition call is spent, and whether a version is current."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from .errors import ImageProblem, ImageRejected, ObjectUnreadable, error_code, error_message
from .model import MAX_S3_OBJECT_BYTES, MIN_IMAGE_PIXELS, ObjectRef

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef, GetObjectRequestTypeDef

S3_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchBucket", "404", "NotFound", "InvalidObjectState"})
# S3 answers a read of a missing key with 403, not 404, when the caller may not list the bucket; the function's
# roles have no s3:ListBucket (it would let them list every key of a bucket they share), so a 403 on a key they
# may read is, as far as they can tell, an object that is not there (or one they may not decrypt).
S3_DENIED_CODES = frozenset({"AccessDenied", "403", "Forbidden"})
DENIED_NOTE = "the object is missing (S3 answers 403 for a missing key to a role without s3:ListBucket) or unreadable"
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# A PNG's first chunk is IHDR: its length (4 bytes) and type after the signature, then width and height (4 each).
PNG_IHDR_TYPE = slice(12, 16)
PNG_SIZE = slice(16, 24)
SNIFF_BYTES = 32


class ObjectInspector:
    """Cheap checks before a Rekognition call is spent: one ranged GET of the first bytes."""

    def __init__(self, client: S3Client) -> None:
        self._client = client

    def inspect(self, ref: ObjectRef, size_hint: int | None) -> None:
        """Raise ImageRejected or ObjectUnreadable when DetectFaces is sure to refuse the object: by the size the
        event gave, then by its first bytes and real size (a ranged GET)."""
        check_size(size_hint)
        head, size = self._first_bytes(ref)
        check_size(size)
        check_format(head)

    def _first_bytes(self, ref: ObjectRef) -> tuple[bytes, int]:
        """The object's first SNIFF_BYTES and its whole size, from one ranged GET."""
        params: GetObjectRequestTypeDef = {"Bucket": ref.bucket, "Key": ref.key, "Range": f"bytes=0-{SNIFF_BYTES - 1}"}
        if ref.version_id:
            params["VersionId"] = ref.version_id
        try:
            response = self._client.get_object(**params)
        except ClientError as exc:
            problem = read_problem(exc)
            if problem is None:
                raise
            raise problem from exc
        head = response["Body"].read(SNIFF_BYTES)
        return head, _total_size(response, len(head))

    def current(self, ref: ObjectRef) -> CurrentObject | None:
        """The object's current version as a HEAD of the key shows it, or None when the bucket has none (the
        object was deleted, or never was there: a 404, or the 403 a role without s3:ListBucket gets)."""
        try:
            head = self._client.head_object(Bucket=ref.bucket, Key=ref.key)
        except ClientError as exc:
            if error_code(exc) in S3_MISSING_CODES | S3_DENIED_CODES:
                return None
            raise
        version = head.get("VersionId")
        size = head.get("ContentLength")
        return CurrentObject(
            version_id=str(version) if version else None,
            etag=str(head.get("ETag", "")).strip('"') or None,
            size=int(size) if size is not None else None,
            modified=head.get("LastModified"),
        )


@dataclass(frozen=True)
class CurrentObject:
    """An object's current version, as a HEAD shows it."""

    version_id: str | None  # None in an unversioned bucket; "null" for a version written before versioning
    etag: str | None
    size: int | None
    modified: datetime | None

    @property
    def pinned_version(self) -> str | None:
        """The version id a record pins: none for "null" (S3 finds that version without one)."""
        return self.version_id if self.version_id != "null" else None


def not_current(ref: ObjectRef, etag: str | None, current: CurrentObject | None) -> str | None:
    """Why the listed version (`ref`'s, or by its ETag when it has none) is no longer the object's current one,
    or None when it is.

    A backfill record describes the object as it was listed; by the time it runs, the object may have
    been replaced or deleted, and then its own event (or none) decides, never the backfill.
    """
    if current is None:
        return "the object is no longer in the bucket"
    if ref.version_id:
        if current.version_id != ref.version_id:
            return f"the current version is now {current.version_id}"
    elif etag and current.etag != etag:
        return "the object was replaced since it was listed"
    return None


def read_problem(exc: ClientError) -> ImageProblem | None:
    """What a failed GET of the object means for the image, or None for an error to raise as it is (throttling, a
    5xx, anything else: the invocation fails, and Lambda retries it)."""
    code = error_code(exc)
    if code in S3_MISSING_CODES:
        return ObjectUnreadable("InvalidS3ObjectException", f"S3 {code}: {error_message(exc)}")
    if code in S3_DENIED_CODES:
        return ObjectUnreadable("InvalidS3ObjectException", f"S3 {code}: {DENIED_NOTE}: {error_message(exc)}")
    if code == "InvalidRange":  # a ranged GET of an empty object
        return ImageRejected("EmptyObject", "the object is 0 bytes")
    return None


def check_size(size: int | None) -> None:
    """Refuse an empty object, or one over Rekognition's S3 limit; None (not known yet) passes."""
    if size == 0:
        raise ImageRejected("EmptyObject", "the object is 0 bytes")
    if size is not None and size > MAX_S3_OBJECT_BYTES:
        raise ImageRejected("ImageTooLargeException", f"{size} bytes is over Rekognition's 15 MB S3 limit")


def check_format(head: bytes) -> None:
    """Refuse what is not a JPEG or a PNG, and a PNG smaller than Rekognition reads, by the object's first bytes."""
    if head.startswith(JPEG_MAGIC):
        return
    if not head.startswith(PNG_MAGIC):
        raise ImageRejected("InvalidImageFormatException", f"not a JPEG or PNG (first bytes {head[:8].hex()})")
    if len(head) >= PNG_SIZE.stop and head[PNG_IHDR_TYPE] == b"IHDR":
        width, height = struct.unpack(">II", head[PNG_SIZE])
        if width < MIN_IMAGE_PIXELS or height < MIN_IMAGE_PIXELS:
            raise ImageRejected(
                "InvalidParameterException",
                f"image is {width}x{height} px; Rekognition needs at least {MIN_IMAGE_PIXELS}x{MIN_IMAGE_PIXELS}",
            )


def _total_size(response: GetObjectOutputTypeDef, read: int) -> int:
    content_range = str(response.get("ContentRange") or "")
    if "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    return int(response.get("ContentLength", read))
