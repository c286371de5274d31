"""Consumers that are not facepipe: the local stack's outcome events through any client's rule and queue, and a
result read by a Node.js program (AWS SDK for JavaScript v3 and Node's zlib, no facepipe code) that must get the
very faces Python gets (docs/DESIGN.md, "Outcome events" and "Reading a result without facepipe's code")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema

from detect_faces.contract import OUTCOME_EVENT_SOURCE
from facepipe.common import photos
from tests.helpers import Local

ROOT = Path(__file__).resolve().parents[2]
CONSUMER = ROOT / "tests" / "consumers" / "consumer.mjs"
DETAIL_SCHEMA = json.loads((ROOT / "schemas" / "outcome-event-detail.schema.json").read_text())


def node(local: Local, *args: str) -> str:
    """Run the Node.js consumer against the local stack, as another team's program would be configured."""
    binary = shutil.which("node")
    assert binary, "node is needed (README: Python 3.11+, node and make)"
    assert (ROOT / "node_modules" / "@aws-sdk" / "client-dynamodb").is_dir(), "run `make node` (make test does)"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ENDPOINT_URL": local.p.endpoint,
        "AWS_REGION": local.p.settings.region,
        # moto's documented fake credentials (facepipe.local.aws.FAKE_CREDENTIALS), never real ones
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    done = subprocess.run(
        [binary, str(CONSUMER), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def subscribe_with_boto3(local: Local) -> str:
    """Any client's rule: every facepipe event to a queue."""
    sqs, events = local.sqs, local.p.client("events")
    queue = sqs.create_queue(QueueName="python-consumer")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="python-consumer", EventPattern=json.dumps({"source": [OUTCOME_EVENT_SOURCE]}))
    events.put_targets(Rule="python-consumer", Targets=[{"Id": "queue", "Arn": arn}])
    return str(queue)


def drain(local: Local, queue: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        got = local.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not got:
            return found
        for message in got:
            found.append(json.loads(message["Body"]))
            local.sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


def test_a_node_consumer_gets_the_outcome_event_and_the_same_faces_python_does(local: Local) -> None:
    # Given a Node.js program subscribed to "Faces Detected", and a Python one to every facepipe event
    node_queue = node(local, "subscribe")
    python_queue = subscribe_with_boto3(local)
    local.settle()

    # When photos are uploaded and one is deleted
    local.upload("team/astronaut.jpg", photos.photo("astronaut.jpg"))
    local.upload("team/notes.jpg", b"not an image at all")
    local.settle()
    local.delete("team/notes.jpg")
    local.settle()

    # Then the Node program receives the event and reads the same faces from the table as Python does
    received = json.loads(node(local, "read", node_queue))
    event = received["event"]
    assert (event["source"], event["detail-type"]) == ("facepipe", "Faces Detected")
    assert event["detail"]["key"] == "team/astronaut.jpg"
    python = local.result("team/astronaut.jpg")
    assert received["status"] == "DETECTED" and received["faces"] == python.faces and len(python.faces) >= 1
    assert json.dumps(received["faces"]) == json.dumps(python.faces)  # the very numbers, keys and order

    # And every outcome is one event, each valid against the schema, seen by any client's rule
    events = drain(local, python_queue)
    kinds = sorted((e["detail-type"], e["detail"]["key"]) for e in events)
    assert kinds == [
        ("Faces Detected", "team/astronaut.jpg"),
        ("Image Deleted", "team/notes.jpg"),
        ("Image Rejected", "team/notes.jpg"),
    ]
    validator = jsonschema.Draft202012Validator(DETAIL_SCHEMA, format_checker=jsonschema.FormatChecker())
    for seen in events:
        validator.validate(seen["detail"])
    rejected = next(e["detail"] for e in events if e["detail-type"] == "Image Rejected")
    assert rejected["error_code"] == "InvalidImageFormatException" and rejected["table"] == local.p.table


def test_no_events_when_they_are_turned_off(detector: Any) -> None:
    from tests.helpers import start_local

    pipeline = start_local(detector, settings={"events": False})
    try:
        local = Local(pipeline)
        queue = subscribe_with_boto3(local)
        local.settle()
        local.upload("quiet.jpg", photos.photo("astronaut.jpg"))
        local.settle()
        assert local.result("quiet.jpg").status == "DETECTED"
        assert pipeline.outcome_events is None and drain(local, queue) == []
    finally:
        pipeline.stop()
