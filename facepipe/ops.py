"""Operator commands' logic: results, show, failures, redrive, backfill. The CLI (cli.py) only wires them.

Each works on a Target (a deployed stack, resolved from its CloudFormation outputs, or the running local
stack) and takes its boto3 clients, a clock and a sleep, so the tests drive it with moto and Stubbers.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import boto3
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

from detect_faces.contract import BACKFILL_EVENT_NAME, BACKFILL_EVENT_SOURCE, BACKFILL_SEQUENCER, REDRIVE_FLAG
from detect_faces.model import ImageEvent, InvalidEventError
from detect_faces.results import ImageResult, ResultsStore, assemble, decode_item

from .resources import INDEX_BY_KEY, INDEX_PARTITION_KEY, INDEX_SORT_KEY

OUTPUT_BUCKET, OUTPUT_TABLE, OUTPUT_DLQ_URL, OUTPUT_FUNCTION = (
    "UploadsBucketName",
    "ResultsTableName",
    "DeadLetterQueueUrl",
    "DetectorFunctionName",
)  # the stack's CfnOutput ids (infra/stack.py)


class OpsError(Exception):
    """One line for the operator; the CLI exits non-zero."""


# ---- targets --------------------------------------------------------------------------------------------


@dataclass
class Target:
    bucket: str
    table: str
    dlq_url: str
    function_name: str
    client: Callable[[str], Any]
    description: str = ""

    def results(self) -> ResultsStore:
        return ResultsStore(self.client("dynamodb"), self.table)


def stack_target(stack_name: str, session: Any = None) -> Target:
    session = session or boto3.session.Session()
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise OpsError(f"stack {stack_name!r}: {exc.response['Error'].get('Message', exc)}") from None
    except (NoCredentialsError, NoRegionError) as exc:
        raise OpsError(f"{exc} (set AWS_PROFILE / AWS_REGION, or use --local)") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [k for k in (OUTPUT_BUCKET, OUTPUT_TABLE, OUTPUT_DLQ_URL, OUTPUT_FUNCTION) if k not in outputs]
    if missing:
        raise OpsError(f"stack {stack_name!r} has no output {', '.join(missing)}: is it a facepipe stack?")
    return Target(
        bucket=outputs[OUTPUT_BUCKET],
        table=outputs[OUTPUT_TABLE],
        dlq_url=outputs[OUTPUT_DLQ_URL],
        function_name=outputs[OUTPUT_FUNCTION],
        client=session.client,
        description=f"stack {stack_name} ({session.region_name})",
    )


def state_file() -> Path:
    base = os.environ.get("FACEPIPE_STATE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "facepipe")
    return Path(base) / "local.json"


def write_local_state(state: dict[str, str]) -> Path:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))
    return path


def local_target() -> Target:
    path = state_file()
    if not path.exists():
        raise OpsError("no local stack is running: start one with `python -m facepipe local up`")
    state = json.loads(path.read_text())
    endpoints = {"lambda": state["lambda_endpoint"], "rekognition": state["rekognition_endpoint"]}

    def client(service: str) -> Any:
        return boto3.client(
            service,
            region_name=state["region"],
            endpoint_url=endpoints.get(service, state["endpoint"]),
            aws_access_key_id="testing",  # moto's fake credentials
            aws_secret_access_key="testing",  # noqa: S106
        )

    return Target(
        bucket=state["bucket"],
        table=state["table"],
        dlq_url=state["dlq_url"],
        function_name=state["function_name"],
        client=client,
        description=f"local stack at {state['endpoint']}",
    )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise OpsError(f"expected s3://bucket/key, got {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


# ---- results --------------------------------------------------------------------------------------------


def list_results(
    target: Target, prefix: str = "", *, include_deleted: bool = False, with_faces: bool = False
) -> Iterator[ImageResult]:
    """Every image's result, in key order: one Query of the table's by-key index (summary items only);
    faces are fetched per image only when asked."""
    dynamodb = target.client("dynamodb")
    kwargs: dict[str, Any] = {
        "TableName": target.table,
        "IndexName": INDEX_BY_KEY,
        "KeyConditionExpression": "#b = :bucket AND begins_with(#k, :prefix)",
        "ExpressionAttributeNames": {"#b": INDEX_PARTITION_KEY, "#k": INDEX_SORT_KEY},
        "ExpressionAttributeValues": {":bucket": {"S": target.bucket}, ":prefix": {"S": prefix}},
    }
    if not prefix:  # begins_with needs a non-empty prefix
        kwargs["KeyConditionExpression"] = "#b = :bucket"
        kwargs["ExpressionAttributeNames"] = {"#b": INDEX_PARTITION_KEY}
        kwargs["ExpressionAttributeValues"] = {":bucket": {"S": target.bucket}}
    found: list[ImageResult] = []
    while True:
        page = dynamodb.query(**kwargs)
        for item in page.get("Items", []):
            result = assemble([decode_item(item)])
            if result is not None and (include_deleted or result.status != "DELETED"):
                found.append(result)
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    store = target.results()
    for result in found:
        if with_faces and result.face_count:
            yield store.get(result.bucket, result.key) or result
        else:
            yield result


def result_json(result: ImageResult) -> dict[str, Any]:
    return {
        "bucket": result.bucket,
        "key": result.key,
        "version_id": result.version_id,
        "status": result.status,
        "reason": result.reason,
        "face_count": result.face_count,
        "detected_at": result.detected_at,
        "faces": result.faces,
    }


# ---- show -----------------------------------------------------------------------------------------------


def show(target: Target, uri: str, out: str | None) -> tuple[str, ImageResult]:
    from .annotate import annotate, save

    bucket, key = parse_s3_uri(uri)
    result = target.results().get(bucket, key)
    if result is None:
        raise OpsError(f"no result for {uri}")
    if result.status != "DETECTED":
        raise OpsError(f"{uri} is {result.status}: {result.reason or 'no faces to draw'}")
    params = {"Bucket": bucket, "Key": key}
    if result.version_id:
        params["VersionId"] = result.version_id
    try:
        body = target.client("s3").get_object(**params)["Body"].read()
    except ClientError as exc:
        raise OpsError(f"cannot read {uri}: {exc.response['Error'].get('Code')}") from None
    path = out or f"{Path(key).stem}.annotated.png"
    save(annotate(body, result.faces), path)
    return path, result


# ---- failures -------------------------------------------------------------------------------------------


@dataclass
class Failure:
    message_id: str
    receipt_handle: str
    body: dict[str, Any] | None
    raw: str
    sent_at: str
    sent_ms: int = 0  # SQS's SentTimestamp (epoch milliseconds)

    @property
    def records(self) -> list[dict[str, Any]]:
        payload = (self.body or {}).get("requestPayload") or {}
        records = payload.get("Records") if isinstance(payload, dict) else None
        return records if isinstance(records, list) else []

    @property
    def redrive_run(self) -> Any:
        """The redrive run whose replay produced this record, if any."""
        payload = (self.body or {}).get("requestPayload")
        return payload.get(REDRIVE_FLAG) if isinstance(payload, dict) else None

    @property
    def replayable(self) -> bool:
        """Every record is an S3 record the function can parse: a replay can reach an outcome other than
        being dead-lettered again as malformed."""
        if not self.records:
            return False
        try:
            for record in self.records:
                ImageEvent.from_record(record)
        except (InvalidEventError, TypeError, AttributeError, KeyError):
            return False
        return True

    def summary(self) -> dict[str, Any]:
        body = self.body or {}
        response = _mapping(body.get("responsePayload"))
        context = _mapping(body.get("requestContext"))
        first = _mapping(self.records[0]) if self.records else {}
        obj = _mapping(_mapping(first.get("s3")).get("object"))
        key = obj.get("key")
        version = obj.get("versionId")
        return {
            "message_id": self.message_id,
            "key": unquote_plus(key) if isinstance(key, str) and key else UNKNOWN_KEY,
            "version_id": version if isinstance(version, str) else None,
            "records": len(self.records),
            "error_type": str(response.get("errorType", "?" if body else "not a failure record")),
            "error_message": str(response.get("errorMessage", "" if body else self.raw[:200])),
            "attempts": context.get("approximateInvokeCount"),
            "condition": context.get("condition"),
            "time": body.get("timestamp") or self.sent_at,
        }


UNKNOWN_KEY = "<unknown>"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _receive(sqs: Any, url: str, visibility: int, limit: int) -> Iterator[list[Failure]]:
    """Batches of distinct messages, each hidden for `visibility` seconds, until `limit` or the queue is dry."""
    seen: set[str] = set()
    empty = 0
    while len(seen) < limit and empty < 2:
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, limit - len(seen)),
            VisibilityTimeout=visibility,
            WaitTimeSeconds=1,
            AttributeNames=["SentTimestamp"],
        ).get("Messages", [])
        new = [m for m in messages if m["MessageId"] not in seen]
        empty = 0 if new else empty + 1
        batch = []
        for m in new:
            seen.add(m["MessageId"])
            try:
                body = json.loads(m["Body"])
            except json.JSONDecodeError:
                body = None
            sent = m.get("Attributes", {}).get("SentTimestamp")
            batch.append(
                Failure(
                    message_id=m["MessageId"],
                    receipt_handle=m["ReceiptHandle"],
                    body=body if isinstance(body, dict) else None,
                    raw=m["Body"],
                    sent_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(sent) / 1000)) if sent else "",
                    sent_ms=int(sent) if sent else 0,
                )
            )
        if batch:
            yield batch


def list_failures(target: Target, limit: int = 1000) -> list[Failure]:
    """The DLQ's messages, left in the queue: received with a visibility timeout, then made visible again."""
    sqs = target.client("sqs")
    failures = [f for batch in _receive(sqs, target.dlq_url, visibility=60, limit=limit) for f in batch]
    _release(sqs, target.dlq_url, failures)
    return failures


def _release(sqs: Any, url: str, failures: list[Failure]) -> None:
    for i in range(0, len(failures), 10):
        batch = failures[i : i + 10]
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": f.receipt_handle, "VisibilityTimeout": 0} for n, f in enumerate(batch)
            ],
        )


# ---- rate limiting ----------------------------------------------------------------------------------------


@dataclass
class RateLimiter:
    """At most `rate` calls per second, evenly spaced; clock and sleep are injectable."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _next: float | None = field(default=None, init=False)

    def wait(self) -> None:
        now = self.clock()
        if self._next is not None and now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + 1.0 / self.rate


# ---- redrive ----------------------------------------------------------------------------------------------


@dataclass
class RedriveReport:
    replayed: int = 0
    skipped: int = 0  # cannot be replayed (not failure records, or malformed records): left in the queue
    new: int = 0  # sent after the run began (among them, failures of this run's own replays): left for later
    left: int = 0  # messages in the queue when the run ended, by SQS's approximate count
    planned: list[dict[str, Any]] = field(default_factory=list)  # --dry-run
    run_id: str = ""


# SentTimestamp is SQS's clock, the run's start is the operator's: allow this much skew between them.
CLOCK_SKEW_MS = 5_000


def redrive(
    target: Target,
    *,
    max_messages: int | None = None,
    dry_run: bool = False,
    limiter: RateLimiter | None = None,
    progress: Callable[[int], None] = lambda n: None,
    clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    run_id: str | None = None,
) -> RedriveReport:
    """Replay each failure record's requestPayload through the function (async invoke), then delete the
    message — only once Lambda accepted the replay (202). Anything else stays in the queue.

    A run replays only what was in the queue when it began: a replay that fails again is dead-lettered
    as a new message, marked with this run's id (the function and Lambda's on-failure record keep the
    event's redrive flag); such messages, and any sent after the run began, are left for the next run.
    """
    sqs, lambda_ = target.client("sqs"), target.client("lambda")
    limiter = limiter or RateLimiter(5.0)
    report = RedriveReport(run_id=run_id or f"redrive-{uuid.uuid4().hex[:12]}")
    started_ms = clock_ms()
    limit = max_messages if max_messages is not None else 1_000_000
    held: list[Failure] = []  # left in the queue: hidden until the run ends, so each is seen once
    pending: list[Failure] = []
    try:
        for batch in _receive(sqs, target.dlq_url, visibility=300, limit=limit):
            pending = list(batch)
            while pending:
                failure = pending[0]
                if failure.redrive_run == report.run_id or failure.sent_ms > started_ms + CLOCK_SKEW_MS:
                    report.new += 1
                elif not failure.replayable:
                    report.skipped += 1
                elif dry_run:
                    report.planned.append(failure.summary())
                else:
                    _replay(target, lambda_, failure, limiter, report.run_id)
                    sqs.delete_message(QueueUrl=target.dlq_url, ReceiptHandle=failure.receipt_handle)
                    report.replayed += 1
                    progress(1)
                    pending.pop(0)
                    continue
                held.append(pending.pop(0))
    finally:
        # Whatever was not replayed (skipped, new, planned, refused, or not reached) is visible again at once.
        _release(sqs, target.dlq_url, held + pending)
    report.left = _approximate_count(sqs, target.dlq_url)
    return report


def _approximate_count(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names).get("Attributes", {})
    return sum(int(attributes.get(name, 0)) for name in names)


def _replay(target: Target, lambda_: Any, failure: Failure, limiter: RateLimiter, run_id: str) -> None:
    payload = {**(failure.body or {})["requestPayload"], REDRIVE_FLAG: run_id}
    limiter.wait()
    try:
        response = lambda_.invoke(
            FunctionName=target.function_name, InvocationType="Event", Payload=json.dumps(payload).encode()
        )
    except ClientError as exc:
        error = exc.response["Error"]
        raise OpsError(
            f"replay of {failure.message_id} refused: {error.get('Code')}: {error.get('Message', '')};"
            " it and the rest stay in the DLQ"
        ) from None
    if response.get("StatusCode") != 202:
        raise OpsError(f"replay of {failure.message_id} not accepted (status {response.get('StatusCode')})")


# ---- backfill ---------------------------------------------------------------------------------------------


@dataclass
class BackfillReport:
    listed: int = 0
    skipped_done: int = 0
    invoked: int = 0
    planned: list[str] = field(default_factory=list)


def existing_objects(s3: Any, bucket: str, prefix: str, start_after: str = "") -> Iterator[dict[str, Any]]:
    """Current versions only (list_object_versions works for unversioned buckets too: VersionId 'null')."""
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            if version.get("IsLatest") and version["Key"] > start_after:
                yield version


def has_result_for(summary: dict[str, Any] | None, obj: dict[str, Any]) -> bool:
    """The stored summary is a result (DETECTED or REJECTED) for this very object version: by version id in
    a versioned bucket, by ETag in an unversioned one. A tombstone, a failure, or another version's result
    is not, and the object is backfilled."""
    if not summary or summary.get("status") not in ("DETECTED", "REJECTED"):
        return False
    version = obj.get("VersionId")
    if version and version != "null":
        return bool(summary.get("version_id") == version)
    return bool(summary.get("etag")) and summary.get("etag") == str(obj.get("ETag", "")).strip('"')


def backfill_event(bucket: str, obj: dict[str, Any], region: str) -> dict[str, Any]:
    """An S3 ObjectCreated record for an object that was there before the stack. Its sequencer is 0, the
    lowest there is, so a real event for the same key always wins and a stored result is never replaced."""
    record_object: dict[str, Any] = {
        "key": quote_plus(obj["Key"], safe="/"),
        "size": obj.get("Size", 0),
        "eTag": str(obj.get("ETag", "")).strip('"'),
        "sequencer": BACKFILL_SEQUENCER,
    }
    if obj.get("VersionId") and obj["VersionId"] != "null":
        record_object["versionId"] = obj["VersionId"]
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": BACKFILL_EVENT_SOURCE,
                "awsRegion": region,
                "eventTime": obj["LastModified"].isoformat() if hasattr(obj.get("LastModified"), "isoformat") else "",
                "eventName": BACKFILL_EVENT_NAME,
                "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": record_object},
            }
        ]
    }


def backfill(
    target: Target,
    uri: str,
    *,
    limiter: RateLimiter,
    dry_run: bool = False,
    start_after: str = "",
    progress: Callable[[int], None] = lambda n: None,
) -> BackfillReport:
    bucket, prefix = parse_s3_uri(uri if uri.count("/") >= 3 else uri.rstrip("/") + "/")
    if bucket != target.bucket:
        raise OpsError(f"the function reads only s3://{target.bucket}/ (its role is scoped to it), not s3://{bucket}/")
    s3, lambda_ = target.client("s3"), target.client("lambda")
    store = target.results()
    region = s3.meta.region_name
    report = BackfillReport()
    try:
        objects = existing_objects(s3, bucket, prefix, start_after)
        for obj in objects:
            report.listed += 1
            progress(1)
            if has_result_for(store.summary(bucket, obj["Key"]), obj):
                report.skipped_done += 1
                continue
            if dry_run:
                report.planned.append(obj["Key"])
                continue
            limiter.wait()
            response = lambda_.invoke(
                FunctionName=target.function_name,
                InvocationType="Event",
                Payload=json.dumps(backfill_event(bucket, obj, region)).encode(),
            )
            if response.get("StatusCode") != 202:
                raise OpsError(f"invoke for {obj['Key']} not accepted (status {response.get('StatusCode')})")
            report.invoked += 1
    except ClientError as exc:
        error = exc.response["Error"]
        raise OpsError(
            f"{error.get('Code')}: {error.get('Message', '')} (after {report.invoked} invoked; rerun to resume)"
        ) from None
    return report
