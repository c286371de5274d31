"""The function's role, proven call by call: every AWS call the function makes on the routing table's paths
becomes an IAM action on its exact resource, evaluated (moto's IAM policy evaluator) against the role policy of
the synthesized template. Every call must be allowed, and every allowed action must be needed by some call or
say which path needs it."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult

from detect_faces import contract, handler
from detect_faces.settings import Settings
from facepipe import ops
from tests.helpers import (
    BUCKET,
    JPEG_BYTES,
    REGION,
    TABLE,
    Aws,
    FakeContext,
    Rekognition,
    detect_faces_response,
    s3_event,
    s3_record,
)
from tests.infra.synth import Synth

pytestmark = pytest.mark.infra

ACCOUNT = "123456789012"
QUEUE = "dlq"  # tests.helpers.moto_aws names the DLQ so
FUNCTION = "detect-faces-fn"
BACKLOG_FUNCTION = "facepipe-backlog-fn"
REPORTS = "facepipe-reports"  # the stack's log bucket: Batch Operations manifests and reports
JOB_ROLE = f"arn:aws:iam::{ACCOUNT}:role/facepipe-BatchJobRole"
STACK = "Facepipe"
ARNS = {
    "AWS::S3::Bucket": f"arn:aws:s3:::{BUCKET}",
    "AWS::DynamoDB::GlobalTable": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}",
    "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}",
    "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/detect-faces:*",
}
# A stream label without colons: parliament splits ARNs on ":" (a real label is 2026-11-30T00:00:00.000).
STREAM = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}/stream/2026-11-30T00.00.00.000"
# What parliament reports that is CDK's own grant, each with why it stands.
PARLIAMENT_ACCEPTED = {
    # DynamoEventSource grants the stream reads with table.grantStreamRead, ListStreams on the stream ARN; parliament's
    # database wants "*" for ListStreams. The grant is CDK's for every DynamoDB event source and Lambda's mapping
    # works with it; widening it to "*" would only make the policy broader.
    "dynamodb:ListStreams",
}
# Allowed actions no recorded call needs, each with the path that does need it.
NEEDED_ELSEWHERE = {
    "logs:CreateLogStream": "Lambda writes the function's logs with its role",
    "logs:PutLogEvents": "Lambda writes the function's logs with its role",
    "xray:PutTraceSegments": "Lambda's active tracing sends the invocation's segments with the role",
    "xray:PutTelemetryRecords": "Lambda's active tracing",
    "sqs:GetQueueAttributes": "CDK's SqsDestination grant (grantSendMessages) adds it with SendMessage",
    "sqs:GetQueueUrl": "CDK's SqsDestination grant (grantSendMessages) adds it with SendMessage",
}


def detect_faces_function(synth: Synth) -> tuple[str, dict[str, Any]]:
    # the live function (the backlog function has its own handler; CDK's notification handler no layer)
    ((function_id, function),) = [
        (k, r) for k, r in synth.resources("AWS::Lambda::Function").items()
        if r["Properties"].get("Handler") == "detect_faces.handler.lambda_handler"
    ]  # fmt: skip
    return function_id, function


def backlog_function(synth: Synth) -> tuple[str, dict[str, Any]]:
    ((function_id, function),) = [
        (k, r) for k, r in synth.resources("AWS::Lambda::Function").items()
        if r["Properties"].get("Handler") == contract.BACKLOG_HANDLER
    ]  # fmt: skip
    return function_id, function


def job_role_id(synth: Synth) -> str:
    ((role_id, _),) = [
        (k, r) for k, r in synth.resources("AWS::IAM::Role").items()
        if r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        == {"Service": "batchoperations.s3.amazonaws.com"}
    ]  # fmt: skip
    return role_id


def reports_bucket_id(synth: Synth) -> str:
    output = synth.raw["Outputs"][contract.OUTPUT_REPORTS_BUCKET]["Value"]
    return str(output["Ref"])


def role_policy(synth: Synth, role_id: str) -> dict[str, Any]:
    (policy,) = [
        p for p in synth.resources("AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    return resolved(synth, policy["Properties"]["PolicyDocument"])


def function_role_policy(synth: Synth, function: tuple[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The role policy of the detect_faces function (or another), its CloudFormation references resolved to the
    ARNs of the moto resources the recorded calls used."""
    _, found = function or detect_faces_function(synth)
    return role_policy(synth, found["Properties"]["Role"]["Fn::GetAtt"][0])


def operator_policy(synth: Synth) -> dict[str, Any]:
    (policy,) = synth.resources("AWS::IAM::ManagedPolicy").values()
    return resolved(synth, policy["Properties"]["PolicyDocument"])


PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
          "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/0123"}  # fmt: skip


def resolved(synth: Synth, document: dict[str, Any]) -> dict[str, Any]:
    """A policy document with its references resolved to the ARNs of the moto resources the calls used."""
    by_id = {rid: ARNS.get(r["Type"]) for rid, r in synth.raw["Resources"].items()}
    by_id[detect_faces_function(synth)[0]] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"
    by_id[backlog_function(synth)[0]] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{BACKLOG_FUNCTION}"
    by_id[job_role_id(synth)] = JOB_ROLE
    uploads = next(  # None when the stack attaches to existing buckets (their ARNs are literal)
        (rid for rid, r in synth.resources("AWS::S3::Bucket").items() if "VersioningConfiguration" in r["Properties"]),
        None,
    )
    reports = reports_bucket_id(synth)
    by_id[reports] = f"arn:aws:s3:::{REPORTS}"

    def get_att(logical_id: str, attribute: str) -> str:
        if attribute == "StreamArn":  # the results table's stream, which the outcome events' role reads
            return STREAM
        assert attribute == "Arn" and by_id.get(logical_id), (logical_id, attribute)
        assert synth.raw["Resources"][logical_id]["Type"] != "AWS::S3::Bucket" or logical_id in (uploads, reports)
        return str(by_id[logical_id])

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            return get_att(*value["Fn::GetAtt"])
        if isinstance(value, dict) and "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(resolve(p) for p in parts)
        if isinstance(value, dict) and value.get("Ref") in PSEUDO:
            return PSEUDO[value["Ref"]]
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return value

    result: dict[str, Any] = resolve(document)
    return result


class Recorder:
    """Every call the function's own clients make, as (IAM action, resource ARN) pairs."""

    def __init__(self) -> None:
        self.needs: list[tuple[str, str, str]] = []  # action, resource, the call that needs it

    def watch(self, client: Any) -> Any:
        service = client.meta.service_model.service_name

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            for action, resource in iam_needs(service, model.name, params):
                self.needs.append((action, resource, f"{service}:{model.name}"))

        client.meta.events.register("provide-client-params", record)
        return client


Needs = list[tuple[str, str]]  # (IAM action, resource ARN) pairs
Calls = list[tuple[str, str, str]]  # (IAM action, resource ARN, the call that needs it)


def iam_needs(service: str, operation: str, params: dict[str, Any]) -> Needs:
    """What IAM must allow for one call: the action(s), each on the resource it is authorised against."""
    needs = SERVICE_NEEDS.get(service)
    if needs is None:
        raise AssertionError(f"the function called {service}:{operation}, which this test does not map yet")
    return needs(operation, params)


def dynamodb_needs(operation: str, params: dict[str, Any]) -> Needs:
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{params['TableName']}"
    if params.get("IndexName"):
        table += f"/index/{params['IndexName']}"
    return [(f"dynamodb:{operation}", table)]


def s3_needs(operation: str, params: dict[str, Any]) -> Needs:
    if operation == "ListObjectVersions":
        return [("s3:ListBucketVersions", f"arn:aws:s3:::{params['Bucket']}")]
    obj = f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"
    if operation == "PutObject":
        return [("s3:PutObject", obj)]
    # HeadObject is authorised as GetObject; a version is read with GetObjectVersion
    return [("s3:GetObjectVersion" if params.get("VersionId") else "s3:GetObject", obj)]


def s3control_needs(operation: str, params: dict[str, Any]) -> Needs:
    if operation == "CreateJob":
        # CreateJob has no resource type; passing the job role is authorised as iam:PassRole on it
        return [("s3:CreateJob", "*"), ("iam:PassRole", params["RoleArn"])]
    return [(f"s3:{operation}", f"arn:aws:s3:{REGION}:{params['AccountId']}:job/{params['JobId']}")]


def rekognition_needs(operation: str, params: dict[str, Any]) -> Needs:
    s3_object = params["Image"]["S3Object"]
    read = "s3:GetObjectVersion" if s3_object.get("Version") else "s3:GetObject"
    # Rekognition reads the S3 object with the caller's permissions
    return [(f"rekognition:{operation}", "*"), (read, f"arn:aws:s3:::{s3_object['Bucket']}/{s3_object['Name']}")]


def sqs_needs(operation: str, params: dict[str, Any]) -> Needs:
    name = params["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
    action = operation.removesuffix("Batch")  # a batch call is authorised as its single action
    return [(f"sqs:{action}", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")]


def cloudformation_needs(operation: str, params: dict[str, Any]) -> Needs:
    return [(f"cloudformation:{operation}", f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/0123")]


def lambda_needs(operation: str, params: dict[str, Any]) -> Needs:
    return [("lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{params['FunctionName']}")]


SERVICE_NEEDS: dict[str, Callable[[str, dict[str, Any]], Needs]] = {
    "dynamodb": dynamodb_needs,
    "s3": s3_needs,
    "s3control": s3control_needs,
    "rekognition": rekognition_needs,
    "sqs": sqs_needs,
    "cloudformation": cloudformation_needs,
    "lambda": lambda_needs,
}


def allowed(document: dict[str, Any], action: str, resource: str) -> bool:
    return IAMPolicy(json.dumps(document)).is_action_permitted(action, resource) == PermissionResult.PERMITTED


@pytest.fixture
def recorded(aws: Aws, rekognition: Rekognition) -> list[tuple[str, str, str]]:
    """The routing table's paths, run through the real handler with clients only the function uses."""
    recorder = Recorder()
    settings = Settings(results_table=TABLE, failure_queue_url=aws.queue_url, detect_max_attempts=1)
    handler.set_processor(
        handler.build_processor(
            s3=recorder.watch(boto3.client("s3", region_name=REGION)),
            rekognition=recorder.watch(rekognition.client),
            dynamodb=recorder.watch(boto3.client("dynamodb", region_name=REGION)),
            sqs=recorder.watch(boto3.client("sqs", region_name=REGION)),
            settings=settings,
        )
    )
    context = FakeContext()

    def run(record: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # the paths that fail the invocation are paths too
            handler.lambda_handler(s3_event(record), context)

    try:
        v1 = aws.put("a.jpg", JPEG_BYTES)
        rekognition.respond(detect_faces_response(2))
        run(s3_record(BUCKET, "a.jpg", version_id=v1, size=len(JPEG_BYTES)))  # DETECTED, a version
        run(
            s3_record(BUCKET, "a.jpg", version_id=v1, size=len(JPEG_BYTES), sequencer="0")
        )  # stale: the blocker comes back with the failed write
        v2 = aws.put("a.jpg", JPEG_BYTES + b"2")
        rekognition.respond(detect_faces_response(1))
        run(s3_record(BUCKET, "a.jpg", version_id=v2, size=len(JPEG_BYTES)))  # replaces v1's chunks: DeleteItem
        aws.s3.put_object(Bucket=BUCKET, Key="plain.jpg", Body=JPEG_BYTES)
        rekognition.fail("InvalidParameterException")
        run(s3_record(BUCKET, "plain.jpg", size=len(JPEG_BYTES)))  # no version: GetObject; REJECTED
        run(s3_record(BUCKET, "gone.jpg", size=len(JPEG_BYTES)))  # gone before read: DLQ (SendMessage)
        aws.put("retry.jpg", JPEG_BYTES)
        rekognition.fail("ThrottlingException")
        run(s3_record(BUCKET, "retry.jpg", size=len(JPEG_BYTES)))  # RETRYING
        rekognition.respond(detect_faces_response(1))
        run(s3_record(BUCKET, "retry.jpg", size=len(JPEG_BYTES)))  # after RETRYING: Query for stray chunks
        listed = aws.s3.list_object_versions(Bucket=BUCKET, Prefix="a.jpg")["Versions"][0]
        run(ops.backfill_event(BUCKET, listed, REGION)["Records"][0])  # backfill: HeadObject
        run(s3_record(BUCKET, "a.jpg", event_name="ObjectRemoved:DeleteMarkerCreated", version_id="m"))  # removal
        run({"eventName": "ObjectCreated:Put", "s3": "malformed"})  # malformed: marker item, SendMessage
    finally:
        handler.set_processor(None)
    return recorder.needs


def test_every_call_the_function_makes_is_allowed_by_its_role(default_synth: Synth, recorded: Calls) -> None:
    document = function_role_policy(default_synth)
    denied = sorted({(a, r, call) for a, r, call in recorded if not allowed(document, a, r)})
    assert denied == []
    # the paths above reached every kind of call the function makes
    actions = {a for a, _, _ in recorded}
    assert {"s3:GetObject", "s3:GetObjectVersion", "rekognition:DetectFaces", "sqs:SendMessage"} <= actions
    assert {f"dynamodb:{op}" for op in ("PutItem", "UpdateItem", "DeleteItem", "Query")} <= actions


def unneeded_actions(
    document: dict[str, Any], recorded: list[tuple[str, str, str]], exempt: dict[str, str] = NEEDED_ELSEWHERE
) -> list[str]:
    """Allowed actions that no recorded call needs (remove one: every call is still allowed) and that do not
    say which other path needs them."""
    unneeded = []
    for index, statement in enumerate(document["Statement"]):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            if action in exempt:
                continue
            narrowed = copy.deepcopy(document)
            kept = [a for a in actions if a != action]
            if kept:
                narrowed["Statement"][index]["Action"] = kept
            else:
                del narrowed["Statement"][index]
            if all(allowed(narrowed, a, r) for a, r, _ in recorded):
                unneeded.append(action)
    return unneeded


def test_every_allowed_action_is_needed_by_a_call_or_says_which_path_needs_it(
    default_synth: Synth, recorded: Calls
) -> None:
    document = function_role_policy(default_synth)
    assert unneeded_actions(document, recorded) == []
    # and the acknowledged ones are really in the role (no stale reasons)
    granted = {
        a for s in document["Statement"] for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert set(NEEDED_ELSEWHERE) <= granted


def test_a_broader_role_is_caught(default_synth: Synth, recorded: Calls) -> None:
    document = function_role_policy(default_synth)
    for statement in document["Statement"]:
        if statement.get("Sid") == "WriteResults":
            statement["Action"] = [*statement["Action"], "dynamodb:Scan"]
    document["Statement"].append({"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"})
    assert unneeded_actions(document, recorded) == ["dynamodb:Scan", "s3:PutObject"]


def test_a_narrower_role_is_caught(default_synth: Synth, recorded: Calls) -> None:
    # The check can fail: without GetObjectVersion, reading a version (ours and Rekognition's) is denied
    document = function_role_policy(default_synth)
    for statement in document["Statement"]:
        if statement.get("Sid") == "ReadUploads":
            statement["Action"] = ["s3:GetObject"]
    denied = {(a, call) for a, r, call in recorded if not allowed(document, a, r)}
    assert ("s3:GetObjectVersion", "s3:GetObject") in denied
    assert ("s3:GetObjectVersion", "rekognition:DetectFaces") in denied


# ---- the operators' managed policy, proven the same way ---------------------------------------------------


class RecordingSession:
    """What ops.stack_target takes: a boto3 session whose clients are recorded (Lambda's Invoke answered 202)."""

    region_name = REGION

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.lambda_ = boto3.client("lambda", region_name=REGION)
        # botocore-stubs type every handler as returning None; a before-call handler's answer is the response
        self.lambda_.meta.events.register(
            "before-call.lambda.Invoke",
            lambda **_: (Accepted(), {"StatusCode": 202}),  # type: ignore[arg-type]
        )
        recorder.watch(self.lambda_)
        self.clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service == "lambda":
            return self.lambda_
        if service == "s3control" and service not in self.clients:  # moto has no Batch Operations: a Stubber
            from botocore.stub import ANY, Stubber

            client = self.recorder.watch(boto3.client("s3control", region_name=REGION))
            stub = Stubber(client)
            job = {"JobId": "job-1", "Status": "Complete", "Priority": 10, "ConfirmationRequired": False}
            waiting = {**job, "Status": "Suspended", "ConfirmationRequired": True}
            for _ in range(2):  # a generated-manifest job and a CSV-manifest job
                stub.add_response("create_job", {"JobId": "job-1"})
            stub.add_response("describe_job", {"Job": waiting}, {"AccountId": ACCOUNT, "JobId": ANY})
            stub.add_response("update_job_status", {"JobId": "job-1", "Status": "Ready"})
            stub.add_response("describe_job", {"Job": job}, {"AccountId": ACCOUNT, "JobId": ANY})
            stub.activate()
            self.clients[service] = client
        if service not in self.clients:
            # a service named at run time: the stubs type boto3.client by each literal service name
            self.clients[service] = self.recorder.watch(boto3.client(service, region_name=REGION))  # type: ignore[call-overload]
        return self.clients[service]


class Accepted:
    status_code = 202
    headers: dict[str, str] = {}


@pytest.fixture
def operator_calls(aws: Aws) -> list[tuple[str, str, str]]:
    """Every operator command against a stack: results (+ --json), show, failures, redrive, backfill."""
    from datetime import UTC, datetime

    from detect_faces.claims import ImageClaims
    from detect_faces.model import ImageEvent
    from facepipe.common.photos import photo

    outputs = {contract.OUTPUT_BUCKET: BUCKET, contract.OUTPUT_TABLE: TABLE, contract.OUTPUT_DLQ_URL: aws.queue_url,
               contract.OUTPUT_FUNCTION: FUNCTION, contract.OUTPUT_REPORTS_BUCKET: REPORTS,
               contract.OUTPUT_BACKLOG_FUNCTION: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{BACKLOG_FUNCTION}",
               contract.OUTPUT_BATCH_JOB_ROLE: JOB_ROLE}  # fmt: skip
    template = {"Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
                "Outputs": {k: {"Value": v} for k, v in outputs.items()}}  # fmt: skip
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    version = aws.put("team.jpg", photo("astronaut.jpg"))
    store = ImageClaims(aws.dynamodb, TABLE)
    event = ImageEvent.from_record(s3_record(BUCKET, "team.jpg", version_id=version))
    now = datetime.now(UTC)
    claim = store.claim(event, "t", now, lease_seconds=60, redrive=False)
    store.store_detected(event, claim, detect_faces_response(1)["FaceDetails"], "DEFAULT", now)
    aws.put("archive/old.jpg", JPEG_BYTES)
    body = {"requestPayload": {"Records": [s3_record(BUCKET, "later.jpg")]}, "responsePayload": {"errorType": "X"}}
    aws.sqs.send_message(QueueUrl=aws.queue_url, MessageBody=json.dumps(body))

    recorder = Recorder()
    target = ops.stack_target(STACK, RecordingSession(recorder))
    list(ops.list_results(target))
    list(ops.list_results(target, with_faces=True))
    ops.show(target, f"s3://{BUCKET}/team.jpg", str(Path(tempfile.mkdtemp()) / "team.png"))
    ops.list_failures(target)
    ops.redrive(target, limiter=ops.RateLimiter(1000, sleep=lambda s: None))
    ops.backfill(target, f"s3://{BUCKET}/", limiter=ops.RateLimiter(1000, sleep=lambda s: None))
    # backfill --engine batch-operations: a generated manifest, a CSV manifest, --status JOB --confirm
    from facepipe.local import aws as local_aws
    from facepipe.ops import batch_operations

    local_aws.create_bucket(aws.s3, REPORTS, REGION, versioned=False)
    aws.put("archive/new.jpg", JPEG_BYTES)
    batch_operations.submit(target, f"s3://{BUCKET}/archive/")
    batch_operations.submit(target, f"s3://{BUCKET}/archive/", manifest="csv")
    batch_operations.confirm(target, "job-1")
    batch_operations.follow(target, "job-1", until_done=False)
    return recorder.needs


def test_every_call_of_the_operator_commands_is_allowed_by_the_operator_policy(
    default_synth: Synth, operator_calls: Calls
) -> None:
    document = operator_policy(default_synth)
    denied = sorted({(a, r, call) for a, r, call in operator_calls if not allowed(document, a, r)})
    assert denied == []
    actions = {a for a, _, _ in operator_calls}
    assert {"cloudformation:DescribeStacks", "dynamodb:Query", "dynamodb:GetItem", "s3:GetObjectVersion",
            "s3:ListBucketVersions", "sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage",
            "sqs:GetQueueAttributes", "lambda:InvokeFunction", "s3:CreateJob", "iam:PassRole", "s3:PutObject",
            "s3:DescribeJob", "s3:UpdateJobStatus"} <= actions  # fmt: skip


def test_every_action_of_the_operator_policy_is_needed_by_a_command(
    default_synth: Synth, operator_calls: Calls
) -> None:
    document = operator_policy(default_synth)
    needed_elsewhere = {"s3:GetObject": "show, for an image stored without a version id (an unversioned bucket)"}
    assert unneeded_actions(document, operator_calls, exempt=needed_elsewhere) == []
    assert default_synth.raw["Outputs"][contract.OUTPUT_OPERATOR_POLICY]["Value"]["Ref"]


def test_the_documented_operator_permissions_are_the_policys(default_synth: Synth) -> None:
    document = operator_policy(default_synth)
    granted = {
        a for st in document["Statement"] for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
    }
    operations = (Path(__file__).resolve().parents[2] / "docs" / "OPERATIONS.md").read_text()
    section = operations.split("<!-- operator-permissions -->", 1)[1].split("<!-- /operator-permissions -->", 1)[0]
    documented = set(re.findall(r"`([a-z0-9]+:[A-Za-z]+)`", section))
    assert documented == granted


def parliament_findings(document: dict[str, Any]) -> list[str]:
    """What parliament reports on a policy document, but for PARLIAMENT_ACCEPTED."""
    from parliament import analyze_policy_string

    found = []
    for finding in analyze_policy_string(json.dumps(document)).findings:
        details = [d for d in as_list(finding.detail)
                   if not (isinstance(d, dict) and d.get("action") in PARLIAMENT_ACCEPTED)]  # fmt: skip
        if details:
            found.append(f"{finding.issue}: {details}")
    return found


def test_every_policy_in_the_template_passes_parliament(default_synth: Synth) -> None:
    from parliament import analyze_policy_string

    policies = [*default_synth.resources("AWS::IAM::Policy").values(),
                *default_synth.resources("AWS::IAM::ManagedPolicy").values()]  # fmt: skip
    documents = [resolved(default_synth, r["Properties"]["PolicyDocument"]) for r in policies]
    findings = {finding: document for document in documents for finding in parliament_findings(document)}
    assert list(findings) == []
    # and parliament does find what it is for: an object action on a bucket ARN
    statement = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}"}
    mismatch = {"Version": "2012-10-17", "Statement": [statement]}
    assert [f.issue for f in analyze_policy_string(json.dumps(mismatch)).findings] == ["RESOURCE_MISMATCH"]


# ---- the backlog function's role and the Batch Operations job role ---------------------------------------------


@pytest.fixture
def backlog_calls(aws: Aws, rekognition: Rekognition) -> list[tuple[str, str, str]]:
    """Batch Operations tasks through the backlog entry point, with recorded clients: each answer's path."""
    from aws_lambda_powertools.utilities.data_classes import S3BatchOperationEvent

    from detect_faces import backlog
    from tests.helpers import batch_operations_event, batch_task

    recorder = Recorder()
    processor = backlog.build_processor(
        s3=recorder.watch(boto3.client("s3", region_name=REGION)),
        rekognition=recorder.watch(rekognition.client),
        dynamodb=recorder.watch(boto3.client("dynamodb", region_name=REGION)),
        sqs=recorder.watch(boto3.client("sqs", region_name=REGION)),
        settings=Settings(results_table=TABLE, failure_queue_url=aws.queue_url, detect_max_attempts=1),
    )

    def run(*tasks: dict[str, Any]) -> None:
        backlog.handle(S3BatchOperationEvent(batch_operations_event(list(tasks))), processor, FakeContext())

    v1 = aws.put("old/a.jpg", JPEG_BYTES)
    rekognition.respond(detect_faces_response(1))
    run(batch_task("old/a.jpg", v1))  # DETECTED, a version
    run(batch_task("old/a.jpg", v1))  # already done: no DetectFaces
    v2 = aws.put("old/a.jpg", JPEG_BYTES + b"2")  # a newer version S3 sent no event for (before the stack)
    rekognition.respond(detect_faces_response(2))
    run(batch_task("old/a.jpg", v2))  # the newer version, analysed over v1's result
    aws.s3.put_object(Bucket=BUCKET, Key="old/b.jpg", Body=JPEG_BYTES)
    rekognition.fail("ThrottlingException")
    rekognition.fail("ThrottlingException")
    run(batch_task("old/b.jpg"))  # TemporaryFailure (the backlog's two attempts), the claim released
    rekognition.fail("InvalidParameterException")
    run(batch_task("old/b.jpg"))  # REJECTED: PermanentFailure
    run(batch_task("old/gone.jpg"))  # not there: FAILED, no DLQ
    return recorder.needs


def test_every_call_of_the_backlog_function_is_allowed_by_its_role(default_synth: Synth, backlog_calls: Calls) -> None:
    document = function_role_policy(default_synth, backlog_function(default_synth))
    denied = sorted({(a, r, call) for a, r, call in backlog_calls if not allowed(document, a, r)})
    assert denied == []
    assert {"s3:GetObject", "s3:GetObjectVersion", "rekognition:DetectFaces"} <= {a for a, _, _ in backlog_calls}
    # and it needs no more: no SQS at all (a task's failure record is the job's report)
    exempt = {k: v for k, v in NEEDED_ELSEWHERE.items() if not k.startswith("sqs:")}
    exempt["dynamodb:DeleteItem"] = "a claim that finds chunks an interrupted attempt left deletes them (results.py)"
    assert unneeded_actions(document, backlog_calls, exempt=exempt) == []
    assert not any(a.startswith("sqs:") for st in document["Statement"] for a in as_list(st["Action"]))


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def job_needs(request: dict[str, Any]) -> list[tuple[str, str, str]]:
    """What S3 Batch Operations does with the job role for a create_job request (S3 user guide, "Granting
    permissions for Batch Operations"): invoke the function, read the manifest (or generate it, which puts an
    inventory configuration on the source bucket), write the completion report."""
    needs = [("lambda:InvokeFunction", request["Operation"]["LambdaInvoke"]["FunctionArn"], "LambdaInvoke")]
    if "Manifest" in request:
        location = request["Manifest"]["Location"]
        read = "s3:GetObjectVersion" if location.get("ObjectVersionId") else "s3:GetObject"
        needs.append((read, location["ObjectArn"], "read the manifest"))
    else:
        source = request["ManifestGenerator"]["S3JobManifestGenerator"]["SourceBucket"]
        needs.append(("s3:PutInventoryConfiguration", source, "generate the manifest"))
    report = request["Report"]
    bucket = report["Bucket"].removeprefix("arn:aws:s3:::")
    needs.append(("s3:PutObject", f"arn:aws:s3:::{bucket}/{report['Prefix']}/job-1/results/abc.csv", "the report"))
    needs.append(("s3:PutObject", f"arn:aws:s3:::{bucket}/{report['Prefix']}/job-1/manifest.json", "the report"))
    return needs


def test_the_job_role_allows_exactly_what_the_jobs_the_cli_creates_need(default_synth: Synth, aws: Aws) -> None:
    from facepipe.local import aws as local_aws
    from facepipe.ops.batch_operations import manifest, plan

    local_aws.create_bucket(aws.s3, REPORTS, REGION, versioned=False)  # as the stack makes it
    aws.put("archive/new.jpg", JPEG_BYTES)
    stack = plan.JobResources(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{BACKLOG_FUNCTION}", JOB_ROLE, REPORTS)
    generated = plan.create_job_request(plan.plan_job(stack, f"s3://{BUCKET}/archive/"))
    location = manifest.write_csv_manifest(
        aws.s3, __import__("detect_faces.results", fromlist=["ResultsStore"]).ResultsStore(aws.dynamodb, TABLE),
        BUCKET, "archive/", REPORTS,
    )  # fmt: skip
    csv_job = plan.create_job_request(plan.plan_job(stack, f"s3://{BUCKET}/archive/", manifest="csv"),
                                      location)  # fmt: skip
    needs = job_needs(generated) + job_needs(csv_job)
    document = role_policy(default_synth, job_role_id(default_synth))
    assert sorted({(a, r) for a, r, _ in needs if not allowed(document, a, r)}) == []
    assert unneeded_actions(document, needs, exempt={}) == []
    # not a wildcard: another bucket's reports, another function, or reading the reports are denied
    assert not allowed(document, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/facepipe-reports/x")
    assert not allowed(document, "lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}")
    assert not allowed(document, "s3:GetObject", f"arn:aws:s3:::{REPORTS}/facepipe-reports/job-1/manifest.json")
    trust = default_synth.raw["Resources"][job_role_id(default_synth)]["Properties"]["AssumeRolePolicyDocument"]
    assert trust["Statement"] == [{"Action": "sts:AssumeRole", "Effect": "Allow",
                                   "Principal": {"Service": "batchoperations.s3.amazonaws.com"}}]  # fmt: skip
