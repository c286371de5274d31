"""moto S3/DynamoDB/SQS stood up as the stack defines them; Rekognition through botocore's Stubber."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from detect_faces import handler
from detect_faces.retry import Backoff
from detect_faces.settings import Settings
from facepipe.local import aws as resources
from tests.builders import REGION, Clock, FakeContext, enforce_sqs_characters

BUCKET = "uploads-bucket"
TABLE = "results-table"


@dataclass
class Aws:
    s3: Any
    dynamodb: Any
    sqs: Any
    queue_url: str

    def put(self, key: str, body: bytes) -> str:
        """Upload and return the version id (the bucket is versioned, as deployed)."""
        return str(self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"])

    def dlq_messages(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
            ).get("Messages", [])
            new = [m for m in got if m["MessageId"] not in {f["MessageId"] for f in found}]
            if not new:
                return found
            found.extend(new)

    def items(self, key: str) -> list[dict[str, Any]]:
        return self.dynamodb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{BUCKET}/{key}"}},
        )["Items"]


@dataclass
class Rekognition:
    client: Any
    stubber: Stubber
    calls: list[dict[str, Any]] = field(default_factory=list)

    def respond(self, response: dict[str, Any]) -> None:
        self.stubber.add_response("detect_faces", response)

    def fail(self, code: str, message: str = "error from Rekognition", status: int = 400) -> None:
        self.stubber.add_client_error(
            "detect_faces", service_error_code=code, service_message=message, http_status_code=status
        )


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        resources.create_bucket(s3, BUCKET, REGION)
        resources.create_table(dynamodb, TABLE)
        queue_url = resources.create_dlq(sqs, "dlq")
        enforce_sqs_characters(sqs)
        yield Aws(s3=s3, dynamodb=dynamodb, sqs=sqs, queue_url=queue_url)


@pytest.fixture
def rekognition() -> Iterator[Rekognition]:
    client = boto3.client("rekognition", region_name=REGION)
    stub = Rekognition(client=client, stubber=Stubber(client))
    # Fires before the Stubber answers, so every DetectFaces call is counted with its parameters.
    client.meta.events.register(
        "provide-client-params.rekognition.DetectFaces", lambda params, **_: stub.calls.append(dict(params))
    )
    stub.stubber.activate()
    yield stub
    stub.stubber.assert_no_pending_responses()


@dataclass
class Pipeline:
    aws: Aws
    rekognition: Rekognition
    sleeps: list[float]
    context: FakeContext
    capsys: Any
    clock: Clock

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = handler.lambda_handler(event, self.context)
        return result

    def metrics(self) -> dict[str, float]:
        """Sum of every metric Powertools emitted (EMF on stdout) since the last call."""
        totals: dict[str, float] = {}
        for line in self.capsys.readouterr().out.splitlines():
            if not line.startswith("{"):
                continue
            blob = json.loads(line)
            if "_aws" not in blob:
                continue
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = blob[metric["Name"]]
                    totals[metric["Name"]] = totals.get(metric["Name"], 0) + (
                        sum(value) if isinstance(value, list) else value
                    )
        return totals


def make_pipeline(aws: Aws, rekognition: Rekognition, capsys: Any, attributes: str = "DEFAULT") -> Pipeline:
    sleeps: list[float] = []
    clock = Clock()
    # The lease the stack sets: the function's timeout (60 s) + 30 s.
    settings = Settings(
        results_table=TABLE, failure_queue_url=aws.queue_url, face_attributes=attributes, claim_lease_seconds=90
    )
    backoff = Backoff(
        max_attempts=settings.detect_max_attempts,
        base_seconds=settings.backoff_base_seconds,
        max_seconds=settings.backoff_max_seconds,
        sleep=sleeps.append,
    )
    handler.set_processor(
        handler.build_processor(
            s3=aws.s3,
            rekognition=rekognition.client,
            dynamodb=aws.dynamodb,
            sqs=aws.sqs,
            settings=settings,
            backoff=backoff,
            clock=clock,
        )
    )
    return Pipeline(aws=aws, rekognition=rekognition, sleeps=sleeps, context=FakeContext(), capsys=capsys, clock=clock)


@pytest.fixture
def pipeline(aws: Aws, rekognition: Rekognition, capsys: Any) -> Iterator[Pipeline]:
    yield make_pipeline(aws, rekognition, capsys)
    handler.set_processor(None)
