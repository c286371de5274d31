"""Everything the tests share: event and response builders, clocks and fault injection, the moto-backed
AWS of the function tests (Aws, Rekognition, Pipeline) and the local stack's helpers (Local). Fixtures that
use them are in the conftest files; tests import from here, never from a conftest."""

from __future__ import annotations

import itertools
import json
import logging
import random
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import boto3
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws

from detect_faces import handler
from detect_faces.results import ImageResult, ResultsStore
from detect_faces.retry import Backoff
from detect_faces.settings import Settings
from facepipe.local import aws as local_aws
from facepipe.ops.pacing import RateLimiter

REGION = "us-east-1"
_sequencer = itertools.count(0x0055B1A7C0000000)


def next_sequencer() -> str:
    """S3 sequencers are hex strings, increasing per key (18 digits in S3 notifications)."""
    return format(next(_sequencer), "018X")


def s3_record(
    bucket: str,
    key: str,
    *,
    event_name: str = "ObjectCreated:Put",
    size: int | None = 1024,
    version_id: str | None = None,
    sequencer: str | None = None,
    etag: str = "d41d8cd98f00b204e9800998ecf8427e",
    region: str = REGION,
) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "sequencer": sequencer or next_sequencer()}
    if not event_name.startswith("ObjectRemoved"):
        obj["eTag"] = etag
        if size is not None:
            obj["size"] = size
    if version_id is not None:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": "2026-11-28T12:00:00.000Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:EXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "EXAMPLE", "x-amz-id-2": "EXAMPLE"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "facepipe",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "EXAMPLE"}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }


def eventbridge(
    kind: str,
    key: str,
    *,
    sequencer: str,
    version_id: str | None = None,
    reason: str = "PutObject",
    deletion_type: str | None = None,
    size: int | None = 128,
    bucket: str | None = None,
) -> dict[str, Any]:
    """An S3 event as EventBridge delivers it (source aws.s3): the key as it is, `version-id`, `etag`."""
    bucket = bucket or BUCKET
    obj: dict[str, Any] = {"key": key, "sequencer": sequencer}
    if kind == "Object Created":
        obj.update(size=size, etag="d41d8cd98f00b204e9800998ecf8427e")
    if version_id:
        obj["version-id"] = version_id
    detail: dict[str, Any] = {"version": "0", "bucket": {"name": bucket}, "object": obj, "reason": reason,
                              "request-id": "R", "requester": "123456789012"}  # fmt: skip
    if deletion_type:
        detail["deletion-type"] = deletion_type
    return {"version": "0", "id": "e-1", "detail-type": kind, "source": "aws.s3", "account": "123456789012",
            "time": "2026-11-29T12:00:00Z", "region": REGION, "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": detail}  # fmt: skip


def s3_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def s3_test_event(bucket: str) -> dict[str, Any]:
    return {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-11-28T12:00:00.000Z",
        "Bucket": bucket,
        "RequestId": "EXAMPLE",
        "HostId": "EXAMPLE",
    }


@dataclass
class FakeContext:
    function_name: str = "detect_faces"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:detect_faces"
    aws_request_id: str = "11111111-2222-3333-4444-555555555555"
    function_version: str = "$LATEST"
    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def face_detail(rng: random.Random, *, attributes: str = "DEFAULT") -> dict[str, Any]:
    """A FaceDetail shaped like Rekognition's, its numbers 32-bit floats as the service's are."""

    def r(lo: float = 0.0, hi: float = 1.0) -> float:
        # Rekognition's numbers are 32-bit floats (its API model types them `float`), sent as doubles
        return float(struct.unpack("<f", struct.pack("<f", rng.uniform(lo, hi)))[0])

    landmark_types = ["eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"]
    if attributes == "ALL":
        landmark_types += [
            "leftEyeBrowLeft", "leftEyeBrowRight", "leftEyeBrowUp", "rightEyeBrowLeft", "rightEyeBrowRight",
            "rightEyeBrowUp", "leftEyeLeft", "leftEyeRight", "leftEyeUp", "leftEyeDown", "rightEyeLeft",
            "rightEyeRight", "rightEyeUp", "rightEyeDown", "noseLeft", "noseRight", "mouthUp", "mouthDown",
            "leftPupil", "rightPupil", "upperJawlineLeft", "midJawlineLeft", "chinBottom", "midJawlineRight",
            "upperJawlineRight",
        ]  # fmt: skip
    detail: dict[str, Any] = {
        "BoundingBox": {"Width": r(0.05, 0.2), "Height": r(0.05, 0.2), "Left": r(0, 0.8), "Top": r(0, 0.8)},
        "Landmarks": [{"Type": t, "X": r(), "Y": r()} for t in landmark_types],
        "Pose": {"Roll": r(-30, 30), "Yaw": r(-60, 60), "Pitch": r(-30, 30)},
        "Quality": {"Brightness": r(0, 100), "Sharpness": r(0, 100)},
        "Confidence": r(90, 100),
    }
    if attributes == "ALL":
        low = rng.randint(10, 60)
        detail.update(
            {
                "AgeRange": {"Low": low, "High": low + rng.randint(3, 12)},
                "Smile": {"Value": rng.random() > 0.5, "Confidence": r(50, 100)},
                "Eyeglasses": {"Value": rng.random() > 0.5, "Confidence": r(50, 100)},
                "Sunglasses": {"Value": rng.random() > 0.5, "Confidence": r(50, 100)},
                "Gender": {"Value": rng.choice(["Male", "Female"]), "Confidence": r(50, 100)},
                "Beard": {"Value": rng.random() > 0.5, "Confidence": r(50, 100)},
                "Mustache": {"Value": rng.random() > 0.5, "Confidence": r(50, 100)},
                "EyesOpen": {"Value": rng.random() > 0.5, "Confidence": r(50, 100)},
                "MouthOpen": {"Value": rng.random() > 0.5, "Confidence": r(50, 100)},
                "Emotions": [
                    {"Type": e, "Confidence": r(0, 100)}
                    for e in ["HAPPY", "SAD", "ANGRY", "CONFUSED", "DISGUSTED", "SURPRISED", "CALM", "FEAR"]
                ],
                "FaceOccluded": {"Value": rng.random() > 0.5, "Confidence": r(50, 100)},
                "EyeDirection": {"Yaw": r(-30, 30), "Pitch": r(-30, 30), "Confidence": r(50, 100)},
            }
        )
    return detail


def detect_faces_response(n: int, *, attributes: str = "DEFAULT", seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    return {"FaceDetails": [face_detail(rng, attributes=attributes) for _ in range(n)]}


JPEG_BYTES = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 100
PNG_80 = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (80).to_bytes(4, "big") + (80).to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
)
PNG_TINY = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (40).to_bytes(4, "big") + (79).to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
)


class Clock:
    """A settable UTC clock for the processor (claims, leases, tombstones)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class SandboxKilled(BaseException):
    """Lambda ending an attempt mid-flight (timeout, out of memory): no except-Exception block runs."""


def fail_calls(client: Any, operation: str, error: BaseException | str, calls: set[int]) -> list[int]:
    """Make the n-th calls (1-based) of `operation` on `client` fail; a string is an AWS error code.
    Returns the running count of calls made, to assert on."""
    seen: list[int] = []

    def hook(**_: Any) -> None:
        seen.append(len(seen) + 1)
        if len(seen) in calls:
            if isinstance(error, str):
                raise ClientError({"Error": {"Code": error, "Message": f"injected {error}"}}, operation)
            raise error

    client.meta.events.register(f"provide-client-params.{client.meta.service_model.service_name}.{operation}", hook)
    return seen


def _sqs_accepts(text: str) -> bool:
    # SQS SendMessage: "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"
    return all(
        c in "\t\n\r" or 0x20 <= ord(c) <= 0xD7FF or 0xE000 <= ord(c) <= 0xFFFD or 0x10000 <= ord(c) <= 0x10FFFF
        for c in text
    )


def enforce_sqs_characters(sqs: Any) -> None:
    """moto accepts any character in a message; the real SQS refuses some. Refuse them like SQS does."""

    def check(params: dict[str, Any], **_: Any) -> None:
        texts = [params.get("MessageBody", "")]
        texts += [a.get("StringValue", "") for a in (params.get("MessageAttributes") or {}).values()]
        if not all(_sqs_accepts(t) for t in texts):
            raise ClientError(
                {"Error": {"Code": "InvalidParameterValue", "Message": "Invalid characters found."}}, "SendMessage"
            )

    sqs.meta.events.register("provide-client-params.sqs.SendMessage", check)


# ---- the function on moto (tests/function, tests/ops) ----------------------------------------------

BUCKET = "uploads"
TABLE = "results"


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
        items: list[dict[str, Any]] = self.dynamodb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{BUCKET}/{key}"}},
        )["Items"]
        return items


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
        return {name: sum(values) for name, values in self.metrics_values().items()}

    def metrics_values(self) -> dict[str, list[float]]:
        """Every value of every metric Powertools emitted (EMF on stdout) since the last call."""
        found: dict[str, list[float]] = {}
        for line in self.capsys.readouterr().out.splitlines():
            if not line.startswith("{"):
                continue
            blob = json.loads(line)
            if "_aws" not in blob:
                continue
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = blob[metric["Name"]]
                    found.setdefault(metric["Name"], []).extend(value if isinstance(value, list) else [value])
        return found


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


class FakeClock:
    """A monotonic clock and sleep for pacing tests: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(rate: float, clock: FakeClock) -> RateLimiter:
    return RateLimiter(rate, clock=clock.clock, sleep=clock.sleep)


@contextmanager
def moto_aws() -> Iterator[Aws]:
    """moto S3/DynamoDB/SQS stood up as the stack defines them (the one moto setup of the tests)."""
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        local_aws.create_bucket(s3, BUCKET, REGION)
        local_aws.create_table(dynamodb, TABLE)
        queue_url = local_aws.create_dlq(sqs, "dlq")
        enforce_sqs_characters(sqs)
        yield Aws(s3=s3, dynamodb=dynamodb, sqs=sqs, queue_url=queue_url)


def stubbed_rekognition() -> Rekognition:
    client = boto3.client("rekognition", region_name=REGION)
    stub = Rekognition(client=client, stubber=Stubber(client))
    # Fires before the Stubber answers, so every DetectFaces call is counted with its parameters.
    client.meta.events.register(
        "provide-client-params.rekognition.DetectFaces", lambda params, **_: stub.calls.append(dict(params))
    )
    stub.stubber.activate()
    return stub


# ---- the local stack (tests/local, tests/ops) ----------------------------------------------------------------
from facepipe.local import LocalPipeline, LocalSettings  # noqa: E402
from facepipe.local.centerface import CenterFaceDetector, FixedDetector  # noqa: E402


class Local:
    """A started LocalPipeline with the helpers the tests need."""

    def __init__(self, pipeline: LocalPipeline) -> None:
        self.p = pipeline
        self.s3 = pipeline.client("s3")
        self.sqs = pipeline.client("sqs")
        self.store = ResultsStore(pipeline.client("dynamodb"), pipeline.table)
        # the s3:TestEvent S3 sends when queue notifications are configured (EventBridge sends none)
        self.events = 1 if pipeline.settings.notifications == "s3" else 0

    def upload(self, key: str, body: bytes) -> str:
        """The new version's id ("null" in an unversioned bucket)."""
        version = str(self.s3.put_object(Bucket=self.p.bucket, Key=key, Body=body).get("VersionId", "null"))
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


def start_local(detector: CenterFaceDetector | FixedDetector, **kwargs: Any) -> LocalPipeline:
    settings = LocalSettings(**{"concurrency": 4, "delay_scale": 0.005, **kwargs.pop("settings", {})})
    return LocalPipeline(settings, detector=detector, **kwargs).start()


@contextmanager
def captured_logs(level: int = logging.INFO) -> Iterator[list[dict[str, Any]]]:
    """The function's structured log lines (Powertools' JSON, as parsed dicts), at `level` and above."""
    lines: list[dict[str, Any]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(self.format(record)))

    capture = Capture()
    capture.setFormatter(handler.logger.registered_formatter)
    service = logging.getLogger(handler.logger.service)
    # The function's child loggers (PlaceHolders are not loggers: making them real would orphan Powertools' children)
    children = [log for name, log in logging.root.manager.loggerDict.items()
                if name.startswith(f"{handler.logger.service}.") and isinstance(log, logging.Logger)]  # fmt: skip
    loggers = [service, *children]
    levels = [log.level for log in loggers]
    service.addHandler(capture)
    for log in loggers:
        log.setLevel(level)
    try:
        yield lines
    finally:
        service.removeHandler(capture)
        for log, previous in zip(loggers, levels, strict=True):
            log.setLevel(previous)


# ---- S3 Batch Operations (the backlog function) ------------------------------------------------------------
_task_ids = itertools.count(1)


def batch_task(
    key: str, version_id: str | None = None, *, bucket: str | None = None, encode: Any = quote_plus
) -> dict[str, Any]:
    """One task of a LambdaInvoke event as schema 2.0 carries it (`batch_operations_event` rewrites it for 1.0):
    the key URL-encoded (`quote_plus`, as S3 encodes keys in events; or `quote`, as in the CSV manifests facepipe
    writes), `s3VersionId` null when the manifest gives no version."""
    return {
        "taskId": f"task-{next(_task_ids)}",
        "s3Key": encode(key, safe="/"),
        "s3VersionId": version_id,
        "s3Bucket": bucket or BUCKET,
    }


def batch_operations_event(
    tasks: list[dict[str, Any]],
    schema: str = "2.0",
    *,
    invocation_id: str | None = None,
    user_arguments: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An S3 Batch Operations LambdaInvoke event (S3 user guide, "Invoke AWS Lambda function"). Schema 1.0 names
    the bucket by its ARN (`s3BucketArn`), 2.0 by its name (`s3Bucket`) and may carry the job's `userArguments`.
    Tasks are taken as they are, but for that: a malformed one stays malformed."""
    if schema == "1.0":
        tasks = [
            {**{k: v for k, v in t.items() if k != "s3Bucket"}, "s3BucketArn": f"arn:aws:s3:::{t['s3Bucket']}"}
            if "s3Bucket" in t
            else t
            for t in tasks
        ]
    job: dict[str, Any] = {"id": "f3cc4f60-61f6-4a2b-8a21-d07600c373ce"}
    if user_arguments is not None:
        job["userArguments"] = user_arguments
    return {
        "invocationSchemaVersion": schema,
        "invocationId": invocation_id or f"invocation-{next(_task_ids)}",
        "job": job,
        "tasks": tasks,
    }
