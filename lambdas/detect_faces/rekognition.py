"""DetectFaces on the S3 object itself (never bytes), retried on throttling (retry.py), classified by code."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from botocore.exceptions import ClientError

from .errors import ImageRejected, ObjectUnreadable, error_code, error_message
from .model import ObjectRef
from .retry import RETRY_CODES, Backoff

if TYPE_CHECKING:
    from mypy_boto3_rekognition import RekognitionClient
    from mypy_boto3_rekognition.literals import AttributeType
    from mypy_boto3_rekognition.type_defs import DetectFacesResponseTypeDef, FaceDetailTypeDef, S3ObjectTypeDef

# Routing table (docs/DESIGN.md, "What happens to each upload"), by Rekognition error code; the retried
# ones are in retry.py.
REJECT_CODES = frozenset({"InvalidImageFormatException", "ImageTooLargeException", "InvalidParameterException"})
DEAD_LETTER_CODES = frozenset({"InvalidS3ObjectException"})


class RekognitionFaces:
    """DetectFaces on the S3 object itself (never bytes), with backoff on throttling."""

    def __init__(
        self, client: RekognitionClient, backoff: Backoff, on_retry: Callable[[str, int, float], None] | None = None
    ) -> None:
        self._client = client
        self._backoff = backoff
        self._on_retry = on_retry

    @property
    def region(self) -> str:
        return str(self._client.meta.region_name)

    def detect(
        self, ref: ObjectRef, attributes: str, remaining_seconds: Callable[[], float] | None = None
    ) -> list[FaceDetailTypeDef]:
        s3_object: S3ObjectTypeDef = {"Bucket": ref.bucket, "Name": ref.key}
        if ref.version_id:
            s3_object["Version"] = ref.version_id

        def call() -> DetectFacesResponseTypeDef:
            # `attributes` is Settings.face_attributes, checked there to be one of DetectFaces' (DEFAULT, ALL)
            return self._client.detect_faces(
                Image={"S3Object": s3_object}, Attributes=[cast("AttributeType", attributes)]
            )

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
        return response.get("FaceDetails", [])
