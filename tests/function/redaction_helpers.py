"""The redaction function's test bench: the detect function on moto (tests.helpers' Pipeline) writes real results,
every META write is turned into its outcome event by the events function's own code, and the redaction function
is invoked with those events in whatever order a test chooses.

Faces come from the real offline detector (CenterFace, as local mode's DetectFaces emulator uses it), turned into
Rekognition-style FaceDetails, and are handed to the detect function as its DetectFaces answer: the results table
holds exactly what the live function would store."""

from __future__ import annotations

import io
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from detect_faces.contract import META_SK, TABLE_PARTITION_KEY, TABLE_SORT_KEY
from detect_faces.outcome_events import entry
from facepipe.local.centerface import CenterFaceDetector
from redaction import handler as redaction_handler
from redaction.processor import Redactor
from redaction.redact import Mode
from redaction.settings import RedactionSettings
from tests.helpers import BUCKET, REGION, TABLE, FakeContext, Pipeline, next_sequencer, s3_event, s3_record

REDACTED = "redacted-copies"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:123456789012:table/{TABLE}/stream/2026-11-28T12:00:00.000"
REDACTION_CONTEXT = FakeContext(
    function_name="redaction", invoked_function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:redaction"
)


def rekognition_faces(detector: CenterFaceDetector, body: bytes) -> list[dict[str, Any]]:
    """CenterFace's faces as Rekognition FaceDetails: boxes relative to the image Rekognition sees (a JPEG
    upright by its EXIF orientation, a PNG as stored)."""
    rgb = rgb_of(decoded(body))
    height, width = rgb.shape[:2]
    return [
        {
            "BoundingBox": {
                "Width": (face.box[2] - face.box[0]) / width,
                "Height": (face.box[3] - face.box[1]) / height,
                "Left": face.box[0] / width,
                "Top": face.box[1] / height,
            },
            "Confidence": face.score * 100,
        }
        for face in detector.detect(rgb)
    ]


class Outbox:
    """The outcome events of the results table, as the events function makes them from the table's stream: every
    write of a META item is read back (a consistent read, beside the writer) and its old and new images go through
    `outcome_events.entry`, which drops a write that left the outcome as it was."""

    def __init__(self, dynamodb: Any, reader: Any) -> None:
        self._reader = reader
        self._keys = threading.local()
        self._images: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        for operation in ("UpdateItem", "PutItem"):
            dynamodb.meta.events.register(f"provide-client-params.dynamodb.{operation}", self._before)
            dynamodb.meta.events.register(f"after-call.dynamodb.{operation}", self._after)

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        key = params.get("Key") or {
            name: params.get("Item", {}).get(name) for name in (TABLE_PARTITION_KEY, TABLE_SORT_KEY)
        }
        self._keys.key = key if (key.get(TABLE_SORT_KEY) or {}).get("S") == META_SK else None

    def _after(self, **_: Any) -> None:
        key = getattr(self._keys, "key", None)
        if key is None:
            return
        new = self._reader.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get("Item", {})
        pk = key[TABLE_PARTITION_KEY]["S"]
        old = self._images.get(pk, {})
        self._images[pk] = new
        record = {
            "eventName": "MODIFY" if old else "INSERT",
            "eventSourceARN": STREAM_ARN,
            "dynamodb": {"Keys": key, "NewImage": new, "OldImage": old},
        }
        found = entry(record, "default")
        if found is not None:
            self.events.append(
                {
                    "version": "0",
                    "id": str(uuid.uuid4()),
                    "detail-type": found["DetailType"],
                    "source": found["Source"],
                    "account": "123456789012",
                    "time": "2026-11-28T12:00:00Z",
                    "region": REGION,
                    "resources": [],
                    "detail": json.loads(found["Detail"]),
                }
            )

    def take(self) -> list[dict[str, Any]]:
        taken, self.events = self.events, []
        return taken


@dataclass
class Mirror:
    """The detect function and the redaction function on one moto AWS: upload, detect, delete, and redact."""

    pipeline: Pipeline
    detector: CenterFaceDetector
    outbox: Outbox
    settings: RedactionSettings
    sleeps: list[float] = field(default_factory=list)

    @property
    def s3(self) -> Any:
        return self.pipeline.aws.s3

    def configure(self, **changes: Any) -> None:
        """Rebuild the redaction function with other settings (mode, margin, pixel limit)."""
        from dataclasses import replace

        self.settings = replace(self.settings, **changes)
        aws = self.pipeline.aws
        redaction_handler.set_redactor(
            redaction_handler.build_redactor(
                settings=self.settings, s3=aws.s3, dynamodb=aws.dynamodb, sqs=aws.sqs, sleep=self.sleeps.append
            )
        )

    @property
    def redactor(self) -> Redactor:
        return redaction_handler.get_redactor()

    # ---- the source bucket and the detect function ---------------------------------------------------------
    def upload(self, key: str, body: bytes, *, bucket: str = BUCKET) -> tuple[str | None, str]:
        """Upload; the new version's id (None in an unversioned bucket) and its ETag (without quotes)."""
        response = self.s3.put_object(Bucket=bucket, Key=key, Body=body)
        return response.get("VersionId"), str(response["ETag"]).strip('"')

    def detect(
        self,
        key: str,
        body: bytes,
        *,
        faces: list[dict[str, Any]] | None = None,
        bucket: str = BUCKET,
        uploaded: tuple[str | None, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Upload (unless `uploaded` names the version) and run the detect function on its event, with CenterFace's
        faces (or `faces`) as the DetectFaces answer; the outcome events its writes produced."""
        version, etag = uploaded or self.upload(key, body, bucket=bucket)
        self.pipeline.rekognition.respond({"FaceDetails": self.faces(body) if faces is None else faces})
        record = s3_record(bucket, key, size=len(body), version_id=version, etag=etag, sequencer=next_sequencer())
        self.pipeline.invoke(s3_event(record))
        self.pipeline.clock.advance(1)
        return self.outbox.take()

    def reject(self, key: str, body: bytes) -> list[dict[str, Any]]:
        """Upload an image Rekognition refuses (InvalidImageFormatException) and run the detect function on it."""
        version, etag = self.upload(key, body)
        self.pipeline.rekognition.fail("InvalidImageFormatException", "Request has invalid image format")
        record = s3_record(BUCKET, key, size=len(body), version_id=version, etag=etag, sequencer=next_sequencer())
        self.pipeline.invoke(s3_event(record))
        self.pipeline.clock.advance(1)
        return self.outbox.take()

    def delete(self, key: str) -> list[dict[str, Any]]:
        """Put a delete marker on the key and run the detect function on its event."""
        marker = self.s3.delete_object(Bucket=BUCKET, Key=key)["VersionId"]
        record = s3_record(BUCKET, key, event_name="ObjectRemoved:DeleteMarkerCreated", version_id=marker,
                           sequencer=next_sequencer())  # fmt: skip
        self.pipeline.invoke(s3_event(record))
        self.pipeline.clock.advance(1)
        return self.outbox.take()

    def delete_version(self, key: str, version: str, *, then: bytes | None = None) -> list[dict[str, Any]]:
        """Delete one version for good and run the detect function on its event; `then` is the body of the version
        that becomes current again, analysed by the function in the same invocation (with CenterFace's faces)."""
        self.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=version)
        if then is not None:
            self.pipeline.rekognition.respond({"FaceDetails": self.faces(then)})
        record = s3_record(BUCKET, key, event_name="ObjectRemoved:Delete", version_id=version,
                           sequencer=next_sequencer())  # fmt: skip
        self.pipeline.invoke(s3_event(record))
        self.pipeline.clock.advance(1)
        return self.outbox.take()

    def faces(self, body: bytes) -> list[dict[str, Any]]:
        return rekognition_faces(self.detector, body)

    # ---- the redaction function and its bucket -------------------------------------------------------------
    def redact(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = redaction_handler.lambda_handler(event, REDACTION_CONTEXT)
        return result

    def copy(self, key: str, *, bucket: str = BUCKET) -> tuple[bytes, dict[str, str]] | None:
        """The redacted copy of s3://bucket/key (its bytes and user metadata), or None."""
        try:
            got = self.s3.get_object(Bucket=self.settings.bucket, Key=f"{bucket}/{key}")
        except self.s3.exceptions.NoSuchKey:
            return None
        return got["Body"].read(), dict(got["Metadata"])

    def copy_version(self, key: str) -> str | None:
        """The source version the copy of `key` was made from, or None when there is no copy."""
        found = self.copy(key)
        return None if found is None else found[1]["facepipe-source-version-id"]

    def dlq(self) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in self.pipeline.aws.dlq_messages()]


def make_mirror(pipeline: Pipeline, detector: CenterFaceDetector, *, mode: Mode = Mode.BLUR) -> Mirror:
    """The redaction bucket (unversioned, as the stack creates it) beside the pipeline's, and both functions."""
    import boto3

    from facepipe.local import aws as local_aws

    aws = pipeline.aws
    local_aws.create_bucket(aws.s3, REDACTED, REGION, versioned=False)
    outbox = Outbox(aws.dynamodb, boto3.client("dynamodb", region_name=REGION))
    settings = RedactionSettings(bucket=REDACTED, results_table=TABLE, failure_queue_url=aws.queue_url, mode=mode)
    mirror = Mirror(pipeline=pipeline, detector=detector, outbox=outbox, settings=settings)
    mirror.configure()
    return mirror


def rgb_of(image: Image.Image) -> np.ndarray:
    """8-bit RGB pixels of any image (16-bit greyscale scaled down, not clipped), for the detector."""
    if image.mode.startswith("I;16"):
        return (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
    return np.asarray(image.convert("RGB"))


def decoded(body: bytes) -> Image.Image:
    """A copy's (or a source's) pixels as Rekognition sees them: a JPEG upright by its EXIF orientation."""
    image = Image.open(io.BytesIO(body))
    return ImageOps.exif_transpose(image) if image.format in ("JPEG", "MPO") else image
