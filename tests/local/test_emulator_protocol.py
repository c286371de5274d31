"""The emulator answers what boto3 sends to AWS, with Rekognition's own errors: requests built by boto3 itself."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError
from PIL import Image

from facepipe.common import photos
from facepipe.local import LocalPipeline
from facepipe.local.centerface import CenterFaceDetector
from facepipe.local.emulator import DetectFacesEmulator
from tests.helpers import start_local

if TYPE_CHECKING:
    from mypy_boto3_rekognition.type_defs import ImageTypeDef

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(detector: CenterFaceDetector) -> Iterator[LocalPipeline]:
    pipeline = start_local(detector)
    s3 = pipeline.client("s3")
    s3.put_object(Bucket=pipeline.bucket, Key="a.jpg", Body=photos.photo("astronaut.jpg"))
    s3.put_object(Bucket=pipeline.bucket, Key="big.jpg", Body=b"\xff\xd8\xff" + b"\0" * (15 * 1024 * 1024 + 1))
    s3.put_object(Bucket=pipeline.bucket, Key="gif.gif", Body=b"GIF89a" + b"\0" * 64)
    small = io.BytesIO()
    Image.new("RGB", (79, 200), "grey").save(small, format="PNG")
    s3.put_object(Bucket=pipeline.bucket, Key="narrow.png", Body=small.getvalue())
    try:
        yield pipeline
    finally:
        pipeline.stop()


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    return str(raised.value.response["Error"]["Code"])


def test_s3_object_request_as_boto3_sends_it(stack: LocalPipeline) -> None:
    rekognition = stack.client("rekognition")
    response = rekognition.detect_faces(Image={"S3Object": {"Bucket": stack.bucket, "Name": "a.jpg"}})
    (face,) = response["FaceDetails"]
    assert set(face) == {"BoundingBox", "Landmarks", "Pose", "Quality", "Confidence"}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_version_is_honoured(stack: LocalPipeline) -> None:
    s3, rekognition = stack.client("s3"), stack.client("rekognition")
    v1 = s3.put_object(Bucket=stack.bucket, Key="v.jpg", Body=photos.photo("astronaut.jpg"))["VersionId"]
    s3.put_object(Bucket=stack.bucket, Key="v.jpg", Body=photos.photo("coffee.jpg"))
    by_version = rekognition.detect_faces(Image={"S3Object": {"Bucket": stack.bucket, "Name": "v.jpg", "Version": v1}})
    latest = rekognition.detect_faces(Image={"S3Object": {"Bucket": stack.bucket, "Name": "v.jpg"}})
    assert (len(by_version["FaceDetails"]), len(latest["FaceDetails"])) == (1, 0)


def test_bytes_request_and_all_attributes_never_invent_anything(stack: LocalPipeline) -> None:
    rekognition = stack.client("rekognition")
    response = rekognition.detect_faces(Image={"Bytes": photos.photo("camera.jpg")}, Attributes=["ALL"])
    (face,) = response["FaceDetails"]
    assert not {"AgeRange", "Emotions", "Gender", "Smile", "EyesOpen"} & set(face)
    assert "not emulated" in response["ResponseMetadata"]["HTTPHeaders"]["x-facepipe-emulator-note"]


def test_rekognition_errors(stack: LocalPipeline) -> None:
    rekognition = stack.client("rekognition")

    def s3(name: str) -> Callable[[], object]:
        return lambda: rekognition.detect_faces(Image={"S3Object": {"Bucket": stack.bucket, "Name": name}})

    assert code_of(s3("missing.jpg")) == "InvalidS3ObjectException"
    assert code_of(lambda: rekognition.detect_faces(Image={"S3Object": {"Bucket": "nope", "Name": "a.jpg"}})) == (
        "InvalidS3ObjectException"
    )
    assert code_of(s3("big.jpg")) == "ImageTooLargeException"
    assert code_of(s3("gif.gif")) == "InvalidImageFormatException"
    assert code_of(s3("narrow.png")) == "InvalidParameterException"
    assert code_of(lambda: rekognition.detect_faces(Image={"Bytes": b"\xff" * (5 * 1024 * 1024 + 1)})) == (
        "ImageTooLargeException"
    )
    # the exception classes boto3 users catch are the modelled ones
    with pytest.raises(rekognition.exceptions.InvalidS3ObjectException):
        s3("missing.jpg")()


def test_throttling_above_the_configured_tps(stack: LocalPipeline) -> None:
    assert stack.emulator is not None
    emulator = DetectFacesEmulator(stack.client("s3"), detector=stack.emulator.detector, tps=1.0)
    endpoint = emulator.start()
    try:
        import boto3
        from botocore.config import Config

        rekognition = boto3.client(
            "rekognition", endpoint_url=endpoint, region_name="us-east-1",
            config=Config(retries={"total_max_attempts": 1}),
        )  # fmt: skip
        image: ImageTypeDef = {"S3Object": {"Bucket": stack.bucket, "Name": "a.jpg"}}
        rekognition.detect_faces(Image=image)
        assert code_of(lambda: rekognition.detect_faces(Image=image)) == "ThrottlingException"
        assert (emulator.stats.throttled, emulator.stats.throttled_keys) == (1, {"a.jpg": 1})  # who was throttled
    finally:
        emulator.stop()
