"""Outcome events from the results table's own stream: what the real handler writes, read from a real DynamoDB
stream (moto's server), published by the events function's code to a real bus with a rule and an SQS target, and
validated against the JSON Schemas in schemas/ (docs/DESIGN.md, "Outcome events")."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from moto.events.models import EventPattern
from moto.server import ThreadedMotoServer

from detect_faces import handler
from detect_faces.contract import OUTCOME_EVENT_SOURCE, OutcomeEvent
from detect_faces.outcome_events import STREAM_FILTER, entry, outcome_detail, publish
from facepipe.local import aws as local_aws
from tests.helpers import (
    BUCKET,
    JPEG_BYTES,
    REGION,
    TABLE,
    Aws,
    Pipeline,
    detect_faces_response,
    make_pipeline,
    s3_event,
    s3_record,
    stubbed_rekognition,
)

pytestmark = pytest.mark.integration
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def schema(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        json.loads((SCHEMAS / f"{name}.schema.json").read_text()), format_checker=jsonschema.FormatChecker()
    )


@pytest.fixture
def server() -> Iterator[str]:
    moto = ThreadedMotoServer(port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        yield url
    finally:
        # moto's backends outlive a server in one process: start the next test from an empty AWS
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
        moto.stop()


class Stack:
    """The function's table (with its stream), bucket and DLQ on moto's server, a bus rule to an SQS queue."""

    def __init__(self, url: str, capsys: Any) -> None:
        def client(service: str) -> Any:
            return local_aws.local_client(service, REGION, {}, url)

        self.dynamodb, self.streams, self.events, self.sqs = (
            client(s) for s in ("dynamodb", "dynamodbstreams", "events", "sqs")
        )
        s3 = client("s3")
        local_aws.create_bucket(s3, BUCKET, REGION)
        local_aws.create_table(self.dynamodb, TABLE)
        queue_url = local_aws.create_dlq(self.sqs, "dlq")
        self.stream_arn = self.dynamodb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        self.rekognition = stubbed_rekognition()
        self.pipeline: Pipeline = make_pipeline(Aws(s3=s3, dynamodb=self.dynamodb, sqs=self.sqs, queue_url=queue_url),
                                                self.rekognition, capsys)  # fmt: skip
        # any client's rule: every facepipe event to a queue
        self.inbox = self.sqs.create_queue(QueueName="inbox")["QueueUrl"]
        inbox_arn = self.sqs.get_queue_attributes(QueueUrl=self.inbox, AttributeNames=["QueueArn"])["Attributes"]
        self.events.put_rule(Name="facepipe-outcomes", EventPattern=json.dumps({"source": [OUTCOME_EVENT_SOURCE]}))
        self.events.put_targets(Rule="facepipe-outcomes", Targets=[{"Id": "inbox", "Arn": inbox_arn["QueueArn"]}])

    def records(self) -> list[dict[str, Any]]:
        """Every stream record so far, oldest first, as DynamoDB Streams delivers them."""
        found = []
        for shard in self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]:
            iterator = self.streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            found += self.streams.get_records(ShardIterator=iterator)["Records"]
        return [{**r, "eventSourceARN": self.stream_arn} for r in found]

    def received(self) -> list[dict[str, Any]]:
        bodies: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.inbox, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return bodies
            for message in got:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.inbox, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def stack(server: str, capsys: Any) -> Iterator[Stack]:
    built = Stack(server, capsys)
    yield built
    handler.set_processor(None)


def put(stack: Stack, key: str, body: bytes = JPEG_BYTES) -> dict[str, Any]:
    version = stack.pipeline.aws.put(key, body)
    return s3_record(BUCKET, key, size=len(body), version_id=version)


def test_every_stored_outcome_is_one_event_of_its_kind_valid_against_the_schema(stack: Stack) -> None:
    # Given four uploads ending in each outcome, and a throttled attempt on the way (RETRYING, no outcome)
    detected, rejected, gone = put(stack, "team.jpg"), put(stack, "notes.jpg"), put(stack, "gone.jpg")
    stack.pipeline.aws.s3.delete_object(Bucket=BUCKET, Key="gone.jpg", VersionId=gone["s3"]["object"]["versionId"])
    for _ in range(10):
        stack.rekognition.fail("ThrottlingException")
    with pytest.raises(Exception, match="Throttling"):
        stack.pipeline.invoke(s3_event(detected))
    stack.rekognition.respond(detect_faces_response(2))
    stack.pipeline.invoke(s3_event(detected))
    stack.rekognition.fail("InvalidImageFormatException", "Request has invalid image format")
    stack.pipeline.invoke(s3_event(rejected))
    stack.pipeline.invoke(s3_event(gone))  # the object is gone: DEAD_LETTERED, its failure record in the DLQ
    marker = stack.pipeline.aws.s3.delete_object(Bucket=BUCKET, Key="team.jpg")["VersionId"]
    stack.pipeline.invoke(s3_event(s3_record(BUCKET, "team.jpg", event_name="ObjectRemoved:DeleteMarkerCreated",
                                             version_id=marker)))  # fmt: skip

    # When the events function's code publishes every stream record (twice: the stream is read at least once)
    records = stack.records()
    published = [publish(r, stack.events, "default") for r in records + records]
    events = stack.received()

    # Then one event per outcome (PROCESSING and RETRYING announce nothing), each valid, twice
    kinds = sorted(e["detail-type"] for e in events)
    assert kinds == sorted(2 * ["Faces Detected", "Image Rejected", "Image Failed", "Image Deleted"])
    assert sorted(p for p in published if p) == kinds
    details = schema("outcome-event-detail")
    for event in events:
        assert event["source"] == "facepipe"
        details.validate(event["detail"])
    by_kind = {e["detail-type"]: e["detail"] for e in events}
    found = by_kind["Faces Detected"]
    assert (found["bucket"], found["key"], found["face_count"], found["attributes"]) == (
        BUCKET,
        "team.jpg",
        2,
        "DEFAULT",
    )
    assert (found["table"], found["pk"], found["status"]) == (TABLE, f"{BUCKET}/team.jpg", "DETECTED")
    assert found["version_id"] == detected["s3"]["object"]["versionId"] and found["error_code"] is None
    assert by_kind["Image Rejected"]["error_code"] == "InvalidImageFormatException"
    assert by_kind["Image Failed"]["error_code"] == "InvalidS3ObjectException"
    assert by_kind["Image Failed"]["status"] == "DEAD_LETTERED"
    assert by_kind["Image Deleted"]["reason"] == "ObjectRemoved:DeleteMarkerCreated"
    # duplicates of one outcome carry the same sequencer and time: (pk, sequencer, finished_at) de-duplicates
    keys = {(e["detail"]["pk"], e["detail"]["sequencer"], e["detail"]["finished_at"]) for e in events}
    assert len(keys) == 4


def test_the_stream_filter_keeps_exactly_the_records_that_are_outcomes(stack: Stack) -> None:
    # Given a detected image, then a version of it deleted for good that is not the stored one (a note beside the
    # result: a META write that changes no outcome)
    first, second = put(stack, "two.jpg"), put(stack, "two.jpg", JPEG_BYTES + b"2")
    stack.rekognition.respond(detect_faces_response(1))
    stack.pipeline.invoke(s3_event(second))
    stack.pipeline.aws.s3.delete_object(Bucket=BUCKET, Key="two.jpg", VersionId=first["s3"]["object"]["versionId"])
    stack.pipeline.invoke(s3_event(s3_record(BUCKET, "two.jpg", event_name="ObjectRemoved:Delete",
                                             version_id=first["s3"]["object"]["versionId"])))  # fmt: skip
    records = stack.records()

    # The mapping's filter passes the outcome writes. Lambda's filters use EventBridge's pattern syntax; moto's
    # matcher of that syntax judges (its TestEventPattern API answers nothing).
    pattern = EventPattern.load(json.dumps(STREAM_FILTER))
    passes = [pattern.matches_event(json.loads(json.dumps(r, default=str))) for r in records]
    statuses = [r["dynamodb"].get("NewImage", {}).get("status", {}).get("S") for r in records]
    assert passes == [
        s in {"DETECTED", "REJECTED", "DEAD_LETTERED", "TASK_FAILED", "FAILED", "DELETED"} for s in statuses
    ]
    # and of those, only the one that stored an outcome makes an event (the note changed none)
    details = [outcome_detail(r) for r, kept in zip(records, passes, strict=True) if kept]
    assert [detail[0] for detail in details if detail] == [OutcomeEvent.FACES_DETECTED]


def test_the_stored_items_and_failure_records_are_valid_against_their_schemas(stack: Stack) -> None:
    upload = put(stack, "crowd.jpg")
    stack.rekognition.respond(detect_faces_response(100, attributes="ALL"))
    stack.pipeline.invoke(s3_event(upload))
    stack.pipeline.invoke(s3_event(s3_record(BUCKET, "nowhere.jpg", version_id="v-gone")))

    items = stack.dynamodb.scan(TableName=TABLE)["Items"]
    as_json = json.loads(json.dumps(items, default=lambda b: base64.b64encode(bytes(b)).decode()))  # as the CLI shows
    metas = [i for i in as_json if i["sk"]["S"] == "META"]
    chunks = [i for i in as_json if i["sk"]["S"].startswith("FACES#")]
    assert len(metas) == 2 and len(chunks) == 1
    for meta in metas:
        schema("result-meta").validate(meta)
    schema("result-faces-chunk").validate(chunks[0])
    schema("faces").validate(
        json.loads(__import__("gzip").decompress(base64.b64decode(chunks[0]["faces_json_gzip"]["B"])))
    )
    (message,) = stack.pipeline.aws.dlq_messages()
    schema("failure-record").validate(json.loads(message["Body"]))


def test_an_event_the_bus_refuses_fails_its_record_so_the_stream_is_retried() -> None:
    class Refusing:
        def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow"}]}

    record = {
        "eventName": "MODIFY",
        "dynamodb": {
            "Keys": {"pk": {"S": "b/k.jpg"}, "sk": {"S": "META"}},
            "NewImage": {"pk": {"S": "b/k.jpg"}, "sk": {"S": "META"}, "status": {"S": "DETECTED"},
                         "bucket": {"S": "b"}, "object_key": {"S": "k.jpg"}, "sequencer": {"S": "0" * 40},
                         "face_count": {"N": "1"}, "finished_at": {"S": "2026-11-30T00:00:00.000Z"}},
            "OldImage": {"pk": {"S": "b/k.jpg"}, "sk": {"S": "META"}, "status": {"S": "PROCESSING"}},
        },
    }  # fmt: skip
    assert entry(record, "default") is not None
    with pytest.raises(Exception, match="ThrottlingException: slow"):
        publish(record, Refusing(), "default")
