"""Cheap checks of the S3 object before a Rekognition call is spent, and whether a version is current."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from .errors import ImageRejected, ObjectUnreadable, error_code, error_message
from .model import MAX_S3_OBJECT_BYTES, MIN_IMAGE_PIXELS, ObjectRef

S3_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchBucket", "404", "NotFound", "InvalidObjectState"})
# S3 answers a read of a missing key with 403, not 404, when the caller may not list the bucket; the function's
# roles have no s3:ListBucket (it would let them list every key of a bucket they share), so a 403 on a key they
# may read is, as far as they can tell, an object that is not there (or one they may not decrypt).
S3_DENIED_CODES = frozenset({"AccessDenied", "403", "Forbidden"})
DENIED_NOTE = "the object is missing (S3 answers 403 for a missing key to a role without s3:ListBucket) or unreadable"
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SNIFF_BYTES = 32


class ObjectInspector:
    """Cheap checks before a Rekognition call is spent: one ranged GET of the first bytes."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def inspect(self, ref: ObjectRef, size_hint: int | None) -> None:
        if size_hint == 0:
            raise ImageRejected("EmptyObject", "the object is 0 bytes")
        if size_hint is not None and size_hint > MAX_S3_OBJECT_BYTES:
            raise ImageRejected("ImageTooLargeException", f"{size_hint} bytes is over Rekognition's 15 MB S3 limit")
        params: dict[str, str] = {"Bucket": ref.bucket, "Key": ref.key, "Range": f"bytes=0-{SNIFF_BYTES - 1}"}
        if ref.version_id:
            params["VersionId"] = ref.version_id
        try:
            response = self._client.get_object(**params)
        except ClientError as exc:
            code = error_code(exc)
            if code in S3_MISSING_CODES:
                raise ObjectUnreadable("InvalidS3ObjectException", f"S3 {code}: {error_message(exc)}") from exc
            if code in S3_DENIED_CODES:
                raise ObjectUnreadable(
                    "InvalidS3ObjectException", f"S3 {code}: {DENIED_NOTE}: {error_message(exc)}"
                ) from exc
            if code == "InvalidRange":  # a ranged GET of an empty object
                raise ImageRejected("EmptyObject", "the object is 0 bytes") from exc
            raise
        head = response["Body"].read(SNIFF_BYTES)
        size = _total_size(response, len(head))
        if size == 0:
            raise ImageRejected("EmptyObject", "the object is 0 bytes")
        if size > MAX_S3_OBJECT_BYTES:
            raise ImageRejected("ImageTooLargeException", f"{size} bytes is over Rekognition's 15 MB S3 limit")
        if head.startswith(JPEG_MAGIC):
            return
        if head.startswith(PNG_MAGIC):
            if len(head) >= 24 and head[12:16] == b"IHDR":
                width, height = struct.unpack(">II", head[16:24])
                if width < MIN_IMAGE_PIXELS or height < MIN_IMAGE_PIXELS:
                    raise ImageRejected(
                        "InvalidParameterException",
                        f"image is {width}x{height} px; Rekognition needs at least"
                        f" {MIN_IMAGE_PIXELS}x{MIN_IMAGE_PIXELS}",
                    )
            return
        raise ImageRejected("InvalidImageFormatException", f"not a JPEG or PNG (first bytes {head[:8].hex()})")

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


def _total_size(response: dict[str, Any], read: int) -> int:
    content_range = str(response.get("ContentRange") or "")
    if "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    return int(response.get("ContentLength", read))
