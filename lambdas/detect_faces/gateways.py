"""Adapters at the edge: Rekognition, the S3 object's first bytes, the dead-letter queue.

Each takes its boto3 client, so tests inject moto clients, botocore Stubbers or fakes.
Errors are classified by their error code, never by message text.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from .model import MAX_S3_OBJECT_BYTES, MIN_IMAGE_PIXELS, ImageEvent, ObjectRef
from .retry import Backoff

# Routing table (DESIGN.md §1), by Rekognition error code.
REJECT_CODES = frozenset({"InvalidImageFormatException", "ImageTooLargeException", "InvalidParameterException"})
DEAD_LETTER_CODES = frozenset({"InvalidS3ObjectException"})
RETRY_CODES = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException", "InternalServerError"})
THROTTLE_CODES = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException"})
S3_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound", "InvalidObjectState"})


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)


class ImageRejected(Exception):
    """The image can never be analysed; record it as REJECTED with this reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ObjectUnreadable(Exception):
    """The S3 object cannot be read (gone, wrong region, unreadable): straight to the DLQ."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class FaceDetector:
    """DetectFaces on the S3 object itself (never bytes), with backoff on throttling."""

    def __init__(self, client: Any, backoff: Backoff, on_retry: Callable[[str, int, float], None] | None = None):
        self._client = client
        self._backoff = backoff
        self._on_retry = on_retry

    @property
    def region(self) -> str:
        return str(self._client.meta.region_name)

    def detect(
        self, ref: ObjectRef, attributes: str, remaining_seconds: Callable[[], float] | None = None
    ) -> list[dict[str, Any]]:
        s3_object: dict[str, str] = {"Bucket": ref.bucket, "Name": ref.key}
        if ref.version_id:
            s3_object["Version"] = ref.version_id

        def call() -> dict[str, Any]:
            response: dict[str, Any] = self._client.detect_faces(Image={"S3Object": s3_object}, Attributes=[attributes])
            return response

        def retried(exc: Exception, attempt: int, pause: float) -> None:
            if self._on_retry is not None:
                self._on_retry(error_code(exc), attempt, pause)

        try:
            response = self._backoff.call(
                call,
                retryable=lambda exc: error_code(exc) in RETRY_CODES,
                remaining_seconds=remaining_seconds,
                on_retry=retried,
            )
        except ClientError as exc:
            code = error_code(exc)
            if code in REJECT_CODES:
                raise ImageRejected(code, error_message(exc)) from exc
            if code in DEAD_LETTER_CODES:
                raise ObjectUnreadable(code, error_message(exc)) from exc
            raise  # throttling past the budget, InternalServerError, AccessDenied, anything else: fail the invocation
        faces: list[dict[str, Any]] = response.get("FaceDetails", [])
        return faces


JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SNIFF_BYTES = 32


@dataclass(frozen=True)
class ObjectHead:
    size: int
    kind: str  # "jpeg" | "png"


class ObjectInspector:
    """Cheap checks before a Rekognition call is spent: one ranged GET of the first bytes."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def inspect(self, ref: ObjectRef, size_hint: int | None) -> ObjectHead:
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
            return ObjectHead(size=size, kind="jpeg")
        if head.startswith(PNG_MAGIC):
            if len(head) >= 24 and head[12:16] == b"IHDR":
                width, height = struct.unpack(">II", head[16:24])
                if width < MIN_IMAGE_PIXELS or height < MIN_IMAGE_PIXELS:
                    raise ImageRejected(
                        "InvalidParameterException",
                        f"image is {width}x{height} px; Rekognition needs at least"
                        f" {MIN_IMAGE_PIXELS}x{MIN_IMAGE_PIXELS}",
                    )
            return ObjectHead(size=size, kind="png")
        raise ImageRejected("InvalidImageFormatException", f"not a JPEG or PNG (first bytes {head[:8].hex()})")

    def not_current(self, ref: ObjectRef, etag: str | None) -> str | None:
        """Why this version is no longer the object's current one, or None when it is.

        A backfill record describes the object as it was listed; by the time it runs, the object may have
        been replaced or deleted, and then its own event (or none) decides, never the backfill.
        """
        try:
            head = self._client.head_object(Bucket=ref.bucket, Key=ref.key)
        except ClientError as exc:
            if error_code(exc) in S3_MISSING_CODES:
                return "the object is no longer in the bucket"
            raise
        if ref.version_id:
            current = head.get("VersionId")
            if current != ref.version_id:
                return f"the current version is now {current}"
        elif etag and str(head.get("ETag", "")).strip('"') != etag:
            return "the object was replaced since it was listed"
        return None


def _total_size(response: dict[str, Any], read: int) -> int:
    content_range = str(response.get("ContentRange") or "")
    if "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    return int(response.get("ContentLength", read))


class FailureQueue:
    """Writes failure records in the shape of Lambda's on-failure destination record."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(
        self,
        event: ImageEvent | dict[str, Any],
        *,
        error_type: str,
        error_message: str,
        request_id: str,
        function_arn: str,
        function_version: str = "$LATEST",
        now: datetime | None = None,
        payload_extra: dict[str, Any] | None = None,
    ) -> str:
        raw = event.raw if isinstance(event, ImageEvent) else event
        record = failure_record(
            raw,
            error_type=error_type,
            error_message=error_message,
            request_id=request_id,
            function_arn=function_arn,
            function_version=function_version,
            now=now,
        )
        record["requestPayload"].update(payload_extra or {})
        attributes = {"errorType": error_type}
        if isinstance(event, ImageEvent):
            attributes.update(bucket=event.ref.bucket, key=event.ref.key)
        response = self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=json.dumps(record),  # ASCII JSON: any key survives here exactly
            MessageAttributes={
                name: {"DataType": "String", "StringValue": sqs_attribute_value(value)}
                for name, value in attributes.items()
            },
        )
        return str(response["MessageId"])


# Characters SQS accepts in message bodies and attribute values (SendMessage: "#x9 | #xA | #xD | #x20 to
# #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"). S3 keys may hold others.
_SQS_REJECTED = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
MAX_ATTRIBUTE_CHARS = 1024


def sqs_attribute_value(value: str) -> str:
    """A message attribute value SQS accepts: characters it rejects become U+FFFD, long values are cut.
    Attributes are for filtering and a glance; the body keeps the exact key."""
    cleaned = _SQS_REJECTED.sub("\ufffd", value)
    if len(cleaned) > MAX_ATTRIBUTE_CHARS:
        cleaned = cleaned[: MAX_ATTRIBUTE_CHARS - 1] + "\u2026"
    return cleaned or "-"


def failure_record(
    raw_record: dict[str, Any],
    *,
    error_type: str,
    error_message: str,
    request_id: str,
    function_arn: str,
    function_version: str = "$LATEST",
    now: datetime | None = None,
) -> dict[str, Any]:
    """The record Lambda's on-failure destination writes; requestPayload replays this one S3 record."""
    timestamp = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "version": "1.0",
        "timestamp": timestamp,
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": "NonRetryableError",
            "approximateInvokeCount": 1,
        },
        "requestPayload": {"Records": [raw_record]},
        "responseContext": {"statusCode": 200, "executedVersion": function_version},
        "responsePayload": {"errorType": error_type, "errorMessage": error_message},
    }
