"""Shared test setup: moto's fake credentials, a fixed region, Powertools quiet but measurable."""

from __future__ import annotations

import os

from facepipe.local.aws import FAKE_CREDENTIALS  # moto's, in one place; importing builds no client

# Before anything builds a boto3 client. moto's documented fake credentials; never real ones.
os.environ.update(
    {
        **FAKE_CREDENTIALS,
        "AWS_SECURITY_TOKEN": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "facepipe-test",
        "POWERTOOLS_METRICS_NAMESPACE": "FacepipeTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "LOG_LEVEL": "WARNING",
    }
)
for name in list(os.environ):
    if name.startswith("AWS_ENDPOINT_URL") or name == "AWS_PROFILE":
        del os.environ[name]


# ---- fixtures shared by the folders (their helpers live in tests/helpers.py) ---------------------------------
from collections.abc import Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from detect_faces import handler  # noqa: E402
from tests.helpers import (  # noqa: E402
    Aws,
    CenterFaceDetector,
    Local,
    Pipeline,
    Rekognition,
    make_pipeline,
    moto_aws,
    start_local,
    stubbed_rekognition,
)


@pytest.fixture
def aws() -> Iterator[Aws]:
    with moto_aws() as stood_up:
        yield stood_up


@pytest.fixture
def rekognition() -> Iterator[Rekognition]:
    stub = stubbed_rekognition()
    yield stub
    stub.stubber.assert_no_pending_responses()


@pytest.fixture
def pipeline(aws: Aws, rekognition: Rekognition, capsys: Any) -> Iterator[Pipeline]:
    yield make_pipeline(aws, rekognition, capsys)
    handler.set_processor(None)


@pytest.fixture(scope="session")
def detector() -> CenterFaceDetector:
    return CenterFaceDetector()  # networks are per input shape; share them across the session


@pytest.fixture
def local(detector: CenterFaceDetector) -> Iterator[Local]:
    pipeline = start_local(detector)
    try:
        yield Local(pipeline)
    finally:
        pipeline.stop()
