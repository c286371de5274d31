"""Outcome events in the stack: the table's stream, the events function and its event source mapping (the filter, the
retries, the undelivered queue), its alarms, its role proven call by call, the schema registry, and the settings
that turn it off or name another bus (docs/DESIGN.md, "Outcome events")."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult

from detect_faces import contract
from detect_faces.outcome_events import STREAM_FILTER, entry
from tests.infra.synth import Synth, cfn_lint, synth

pytestmark = pytest.mark.infra

REGION, ACCOUNT = "us-east-1", "123456789012"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/results"
STREAM_ARN = f"{TABLE_ARN}/stream/2026-11-30T00:00:00.000"
UNDELIVERED_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:undelivered"


@pytest.fixture(scope="session")
def quiet_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(tmp_path_factory.mktemp("cdk-events-off"), events="off")


@pytest.fixture(scope="session")
def own_bus_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(tmp_path_factory.mktemp("cdk-own-bus"), eventBus="photo-events")


def events_function(s: Synth) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (rid, r)
        for rid, r in s.resources("AWS::Lambda::Function").items()
        if r["Properties"]["Handler"] == contract.OUTCOME_EVENTS_HANDLER
    ]
    return found


def table_id(s: Synth) -> str:
    (found,) = s.resources("AWS::DynamoDB::GlobalTable")
    return found


def test_the_table_streams_its_changes_to_the_events_function(default_synth: Synth) -> None:
    table = default_synth.raw["Resources"][table_id(default_synth)]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    function_id, function = events_function(default_synth)
    env = function["Properties"]["Environment"]["Variables"]
    assert env[contract.OUTCOME_EVENT_BUS_VARIABLE] == "default"
    _, mapping = default_synth.one("AWS::Lambda::EventSourceMapping")
    props = mapping["Properties"]
    assert props["FunctionName"] == {"Ref": function_id}
    assert props["EventSourceArn"] == {"Fn::GetAtt": [table_id(default_synth), "StreamArn"]}
    # the filter is the events function's own, as EventBridge pattern JSON
    assert [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]] == [STREAM_FILTER]
    # never lost: from the oldest record, retried while the stream keeps it, a failing batch halved, then the queue
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BisectBatchOnFunctionError"] is True
    assert props["MaximumRecordAgeInSeconds"] == 24 * 3600
    undelivered = props["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    queue = default_synth.raw["Resources"][undelivered]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True and queue["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_undelivered_events_and_failing_batches_raise_alarms(default_synth: Synth) -> None:
    alarms = {
        rid: a["Properties"]
        for rid, a in default_synth.resources("AWS::CloudWatch::Alarm").items()
        if rid.startswith("OutcomeEvents")
    }
    metrics = sorted(a["MetricName"] for a in alarms.values())
    assert metrics == ["ApproximateNumberOfMessagesVisible", "Errors"]
    topic = next(iter(default_synth.resources("AWS::SNS::Topic")))
    assert all(a["AlarmActions"] == [{"Ref": topic}] and a["Threshold"] == 1 for a in alarms.values())


def test_the_schema_registry_holds_the_event_and_it_describes_what_the_function_sends(default_synth: Synth) -> None:
    _, registry = default_synth.one("AWS::EventSchemas::Registry")
    _, schema = default_synth.one("AWS::EventSchemas::Schema")
    assert schema["Properties"]["Type"] == "JSONSchemaDraft4"
    content = json.loads(schema["Properties"]["Content"])
    jsonschema.Draft4Validator.check_schema(content)
    # an event as EventBridge delivers what the events function puts (its entry, in the bus's envelope)
    record = {
        "eventName": "MODIFY",
        "eventSourceARN": STREAM_ARN,
        "dynamodb": {
            "Keys": {"pk": {"S": "b/k.jpg"}, "sk": {"S": "META"}},
            "NewImage": {"pk": {"S": "b/k.jpg"}, "sk": {"S": "META"}, "status": {"S": "REJECTED"},
                         "bucket": {"S": "b"}, "object_key": {"S": "k.jpg"}, "sequencer": {"S": "0" * 40},
                         "face_count": {"N": "0"}, "reason": {"S": "InvalidImageFormatException: not an image"},
                         "finished_at": {"S": "2026-11-30T00:00:00.000Z"}, "etag": {"S": "e"}},
            "OldImage": {"pk": {"S": "b/k.jpg"}, "sk": {"S": "META"}, "status": {"S": "PROCESSING"}},
        },
    }  # fmt: skip
    put = entry(record, "default")
    assert put is not None
    event = {"version": "0", "id": "1", "detail-type": put["DetailType"], "source": put["Source"],
             "account": ACCOUNT, "time": "2026-11-30T00:00:00Z", "region": REGION, "resources": [],
             "detail": json.loads(put["Detail"])}  # fmt: skip
    jsonschema.Draft4Validator(content).validate(event)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(content).validate({**event, "detail-type": "Image Analysed"})
    assert registry["Properties"]["RegistryName"]


def resolved_events_policy(s: Synth, bus_arn: str) -> dict[str, Any]:
    """The events function's role policy, its references resolved to the ARNs the calls below name."""
    _, function = events_function(s)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    (policy,) = [p for p in s.resources("AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]]
    undelivered = next(rid for rid in s.resources("AWS::SQS::Queue") if "Undelivered" in rid)
    logs = next(rid for rid in s.resources("AWS::Logs::LogGroup") if "OutcomeEvents" in rid)
    attributes = {
        (table_id(s), "StreamArn"): STREAM_ARN,
        (table_id(s), "Arn"): TABLE_ARN,
        (undelivered, "Arn"): UNDELIVERED_ARN,
        (logs, "Arn"): f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:events:*",
    }
    pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            return attributes[tuple(value["Fn::GetAtt"])]
        if isinstance(value, dict) and "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(str(resolve(p)) for p in parts)
        if isinstance(value, dict) and value.get("Ref") in pseudo:
            return pseudo[value["Ref"]]
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return value

    document: dict[str, Any] = resolve(policy["Properties"]["PolicyDocument"])
    return document


# What the role must allow, call by call. The events function's own call is PutEvents on its bus; the event source
# mapping reads the stream and sends failed batches' records with the function's role (Lambda developer guide,
# "Using Lambda with DynamoDB": "Lambda needs the following permissions to manage resources related to your
# DynamoDB stream": DescribeStream, GetRecords, GetShardIterator, ListStreams; an SQS on-failure destination needs
# sqs:SendMessage); logs and traces are Lambda's own with the role.
def needs(bus_arn: str) -> list[tuple[str, str]]:
    return [
        ("events:PutEvents", bus_arn),
        *((f"dynamodb:{op}", STREAM_ARN) for op in ("DescribeStream", "GetRecords", "GetShardIterator", "ListStreams")),
        ("sqs:SendMessage", UNDELIVERED_ARN),
        ("logs:PutLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:events:log-stream:x"),
    ]


def allowed(document: dict[str, Any], action: str, resource: str) -> bool:
    return IAMPolicy(json.dumps(document)).is_action_permitted(action, resource) == PermissionResult.PERMITTED


@pytest.mark.parametrize("bus", ["default", "photo-events"])
def test_the_events_role_allows_what_it_needs_on_its_bus_and_nothing_of_another(
    default_synth: Synth, own_bus_synth: Synth, bus: str
) -> None:
    s = default_synth if bus == "default" else own_bus_synth
    bus_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}"
    document = resolved_events_policy(s, bus_arn)
    assert [n for n in needs(bus_arn) if not allowed(document, *n)] == []
    # nothing else: another bus, the table's items, the uploads, the DLQ
    other_bus = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{'default' if bus != 'default' else 'other'}"
    assert not allowed(document, "events:PutEvents", other_bus)
    assert not allowed(document, "dynamodb:GetItem", TABLE_ARN)
    assert not allowed(document, "dynamodb:PutItem", TABLE_ARN)
    assert not allowed(document, "s3:GetObject", "arn:aws:s3:::uploads/photo.jpg")
    env = events_function(s)[1]["Properties"]["Environment"]["Variables"]
    assert env[contract.OUTCOME_EVENT_BUS_VARIABLE] == bus


def test_events_off_leaves_nothing_of_them_in_the_template(quiet_synth: Synth) -> None:
    table = quiet_synth.raw["Resources"][table_id(quiet_synth)]["Properties"]
    assert "StreamSpecification" not in table
    for kind in ("AWS::Lambda::EventSourceMapping", "AWS::EventSchemas::Registry", "AWS::EventSchemas::Schema"):
        assert quiet_synth.resources(kind) == {}
    handlers = [r["Properties"]["Handler"] for r in quiet_synth.resources("AWS::Lambda::Function").values()]
    assert contract.OUTCOME_EVENTS_HANDLER not in handlers


def test_cfn_lint_passes_with_and_without_events(quiet_synth: Synth, own_bus_synth: Synth) -> None:

    for s in (quiet_synth, own_bus_synth):
        assert cfn_lint(s) == ""


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("events", "maybe", "facepipe:events"),
        ("eventBus", "my bus!", "facepipe:eventBus"),
        ("eventBus", "arn:aws:sns:us-east-1:123456789012:topic", "facepipe:eventBus"),
    ],
)
def test_a_bad_events_setting_is_one_line_naming_the_key(key: str, value: str, message: str) -> None:
    from infra.settings import ContextError, FacepipeSettings

    with pytest.raises(ContextError, match=message):
        FacepipeSettings.from_values({f"facepipe:{key}": value})
