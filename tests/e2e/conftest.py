"""Local mode on real photos: moto server, the DetectFaces emulator (CenterFace) and the local runtime."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from detect_faces.results import ImageResult, ResultsStore
from facepipe.local import LocalPipeline, LocalSettings
from facepipe.local.centerface import CenterFaceDetector


@pytest.fixture(scope="session")
def detector() -> CenterFaceDetector:
    return CenterFaceDetector()  # networks are per input shape; share them across the session


class Local:
    """A started LocalPipeline with the helpers the tests need."""

    def __init__(self, pipeline: LocalPipeline) -> None:
        self.p = pipeline
        self.s3 = pipeline.client("s3")
        self.sqs = pipeline.client("sqs")
        self.store = ResultsStore(pipeline.client("dynamodb"), pipeline.table)
        self.events = 1  # the s3:TestEvent sent when notifications were configured

    def upload(self, key: str, body: bytes) -> str:
        version = str(self.s3.put_object(Bucket=self.p.bucket, Key=key, Body=body)["VersionId"])
        self.events += 1
        return version

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.p.bucket, Key=key)
        self.events += 1

    def settle(self, timeout: float = 90.0) -> None:
        assert self.p.wait_for_events(self.events, timeout=timeout), "events did not settle in time"

    def result(self, key: str) -> ImageResult:
        found = self.store.get(self.p.bucket, key)
        assert found is not None, f"no result for {key}"
        return found

    def dlq(self) -> list[dict[str, Any]]:
        bodies: dict[str, dict[str, Any]] = {}
        for _ in range(5):
            for m in self.sqs.receive_message(QueueUrl=self.p.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
                "Messages", []
            ):
                bodies[m["MessageId"]] = json.loads(m["Body"])
        return list(bodies.values())

    @property
    def detect_calls(self) -> int:
        assert self.p.emulator is not None
        return self.p.emulator.stats.requests


def start_local(detector: CenterFaceDetector, **kwargs: Any) -> LocalPipeline:
    settings = LocalSettings(**{"concurrency": 4, "delay_scale": 0.005, **kwargs.pop("settings", {})})
    return LocalPipeline(settings, detector=detector, **kwargs).start()


@pytest.fixture
def local(detector: CenterFaceDetector) -> Iterator[Local]:
    pipeline = start_local(detector)
    try:
        yield Local(pipeline)
    finally:
        pipeline.stop()
