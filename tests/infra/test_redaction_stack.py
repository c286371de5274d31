"""Redacted copies in the stack (`facepipe:redaction`, docs/REDACTION.md): the bucket (created or existing), the
redaction function and its layers, the rule on the outcome events, the async config, the alarm; its role proven call
by call (it reads the watched images and writes only to the redaction bucket); nothing of it when it is off; and the
settings that refuse a loop. What the function does with an event is tests/function/test_redaction.py's."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult

from detect_faces import contract
from detect_faces.contract import EnvVar, OutcomeEvent, RedactionEnvVar
from tests.infra.conftest import KEY_ARN
from tests.infra.synth import ROOT, Synth, cfn_lint, synth

pytestmark = pytest.mark.infra

REGION, ACCOUNT = "us-east-1", "123456789012"
UPLOADS = "uploads-bucket"  # the created uploads bucket, as the resolved policies name it
REDACTED = "redacted-copies"  # the created redaction bucket
EXISTING_REDACTED = "my-redacted"
WATCHED_BUCKETS = ("my-photos", "archive.example")
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/results"
# A stream label without colons: parliament splits ARNs on ":" (tests/infra/test_permissions.py)
STREAM_ARN = f"{TABLE_ARN}/stream/2026-11-30T00.00.00.000"
DLQ_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:dlq"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com",
          "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/Facepipe/0123",
          "AWS::StackName": "Facepipe"}  # fmt: skip
VIA_S3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
LAYER = ROOT / "build" / "redaction-layer"


def require_layer() -> None:
    if not (LAYER / "python" / "PIL").is_dir():
        pytest.fail(f"{LAYER} is missing: run `make redaction-layer` (make test builds it)")


@pytest.fixture(scope="session")
def redaction_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The created uploads bucket, redacted copies in a bucket the stack creates, the defaults otherwise."""
    require_layer()
    return synth(tmp_path_factory.mktemp("cdk-redaction"), redaction="blur")


@pytest.fixture(scope="session")
def existing_redaction_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Two existing watched buckets under a prefix, EventBridge delivery, SSE-KMS, an existing redaction bucket, and
    the async and log settings tuned: as the CDK CLI passes -c flags (strings) and cdk.json holds lists."""
    require_layer()
    return synth(
        tmp_path_factory.mktemp("cdk-redaction-existing"),
        existingBuckets=list(WATCHED_BUCKETS),
        keyPrefixes=["uploads/"],
        notifications="eventbridge",
        kmsKeyArns=[KEY_ARN],
        redaction="FILL",
        redactionBucket=EXISTING_REDACTED,
        redactionMargin="0.25",
        retryAttempts="1",
        maxEventAgeSeconds="3600",
        logRetentionDays="90",
    )


@pytest.fixture(params=["created", "existing"])
def either(request: pytest.FixtureRequest) -> Synth:
    name = "redaction_synth" if request.param == "created" else "existing_redaction_synth"
    s: Synth = request.getfixturevalue(name)
    return s


# ---- finding the pieces ------------------------------------------------------------------------------------------
def redaction_function(s: Synth) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (rid, r) for rid, r in s.resources("AWS::Lambda::Function").items()
        if r["Properties"].get("Handler") == contract.REDACTION_HANDLER
    ]  # fmt: skip
    return found


def redaction_rule(s: Synth) -> tuple[str, dict[str, Any]]:
    (found,) = [(rid, r) for rid, r in s.resources("AWS::Events::Rule").items() if rid.startswith("Redaction")]
    return found


def redaction_bucket_id(s: Synth) -> str | None:
    """The created redaction bucket's logical id; None when the copies go to an existing bucket."""
    value = s.raw["Outputs"][contract.OUTPUT_REDACTED_BUCKET]["Value"]
    return value["Ref"] if isinstance(value, dict) else None


def dlq_id(s: Synth) -> str:
    ((found, _),) = [(rid, r) for rid, r in s.resources("AWS::SQS::Queue").items() if rid.startswith("DeadLetters")]
    return found


def one_id(s: Synth, type_: str) -> str:
    found, _ = s.one(type_)
    return found


# ---- the resources ---------------------------------------------------------------------------------------------
def test_the_created_bucket_is_private_encrypted_ssl_only_logged_and_unversioned(redaction_synth: Synth) -> None:
    s = redaction_synth
    bucket_id = redaction_bucket_id(s)
    assert bucket_id is not None
    bucket = s.raw["Resources"][bucket_id]
    props = bucket["Properties"]
    ((rule,),) = [props["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # unversioned: a copy deleted or replaced is gone, not kept as a noncurrent version (docs/CONFIGURATION.md)
    assert "VersioningConfiguration" not in props
    # access logs go to the stack's log bucket, as the uploads bucket's do
    logging = props["LoggingConfiguration"]
    assert logging["LogFilePrefix"] == "redacted/"
    assert logging["DestinationBucketName"] == s.raw["Outputs"][contract.OUTPUT_REPORTS_BUCKET]["Value"]
    assert bucket["DeletionPolicy"] == "Retain"  # facepipe:removalPolicy's default, as for every stateful resource
    (policy,) = [p for p in s.resources("AWS::S3::BucketPolicy").values()
                 if p["Properties"]["Bucket"] == {"Ref": bucket_id}]  # fmt: skip
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_an_existing_redaction_bucket_is_only_named(existing_redaction_synth: Synth) -> None:
    s = existing_redaction_synth
    assert s.raw["Outputs"][contract.OUTPUT_REDACTED_BUCKET]["Value"] == EXISTING_REDACTED
    assert [rid for rid in s.resources("AWS::S3::Bucket") if rid.startswith("Redaction")] == []
    assert [rid for rid in s.resources("AWS::S3::BucketPolicy") if rid.startswith("Redaction")] == []
    env = redaction_function(s)[1]["Properties"]["Environment"]["Variables"]
    assert env[RedactionEnvVar.BUCKET] == EXISTING_REDACTED


def test_the_function_runs_the_redaction_handler_with_both_layers(either: Synth) -> None:
    s = either
    function_id, function = redaction_function(s)
    props = function["Properties"]
    assert (props["Runtime"], props["Architectures"]) == ("python3.14", ["arm64"])
    assert (props["MemorySize"], props["Timeout"]) == (1024, 60)
    assert props["TracingConfig"] == {"Mode": "Active"}
    # the detect function's asset (lambdas/, every entry point is a handler in it)
    detector = next(r for r in s.resources("AWS::Lambda::Function").values()
                    if r["Properties"].get("Handler") == "detect_faces.handler.lambda_handler")  # fmt: skip
    assert props["Code"] == detector["Properties"]["Code"]
    layers = s.resources("AWS::Lambda::LayerVersion")
    powertools = next(rid for rid, r in layers.items() if "aws-lambda-powertools" in r["Properties"]["Description"])
    pillow = next(rid for rid, r in layers.items() if r["Properties"]["Description"].startswith("pillow=="))
    assert props["Layers"] == [{"Ref": powertools}, {"Ref": pillow}]
    assert layers[pillow]["Properties"]["CompatibleRuntimes"] == ["python3.14"]
    # its own log group, with the configured retention
    log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert log_group.startswith("Redaction")
    retention = 30 if redaction_bucket_id(s) else 90  # the existing synth sets facepipe:logRetentionDays=90
    assert s.raw["Resources"][log_group]["Properties"]["RetentionInDays"] == retention
    assert function_id.startswith("Redaction")


@pytest.mark.parametrize(("which", "mode", "margin"), [("created", "blur", "0.15"), ("existing", "fill", "0.25")])
def test_the_environment_is_what_the_function_reads(
    redaction_synth: Synth, existing_redaction_synth: Synth, which: str, mode: str, margin: str
) -> None:
    s = redaction_synth if which == "created" else existing_redaction_synth
    env = redaction_function(s)[1]["Properties"]["Environment"]["Variables"]
    bucket = {"Ref": redaction_bucket_id(s)} if which == "created" else EXISTING_REDACTED
    assert env == {
        RedactionEnvVar.BUCKET: bucket,
        EnvVar.RESULTS_TABLE: {"Ref": one_id(s, "AWS::DynamoDB::GlobalTable")},
        EnvVar.FAILURE_QUEUE_URL: {"Ref": dlq_id(s)},
        RedactionEnvVar.MODE: mode,
        RedactionEnvVar.MARGIN: margin,
        EnvVar.SERVICE_NAME: contract.SERVICE_NAME,
        EnvVar.METRICS_NAMESPACE: contract.METRICS_NAMESPACE,
        EnvVar.LOG_LEVEL: "INFO",
    }
    # and the function's own reader takes it as meant (references as CloudFormation would resolve them)
    from redaction.settings import RedactionSettings

    def stand_in(name: str, value: Any) -> str:
        if not isinstance(value, dict):
            return str(value)
        return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/dlq" if name == EnvVar.FAILURE_QUEUE_URL else "resolved"

    settings = RedactionSettings.from_env({name: stand_in(name, value) for name, value in env.items()})
    assert (settings.mode.value, settings.margin) == (mode, float(margin))
    assert settings.bucket == ("resolved" if which == "created" else EXISTING_REDACTED)


def test_the_contract_names_are_the_redaction_functions_own() -> None:
    """detect_faces.contract writes the redaction function's names again for the stack (which does not import
    Pillow): they must be the function's."""
    from redaction import redact
    from redaction.settings import RedactionEnv, RedactionSettings

    assert {e.name: e.value for e in RedactionEnvVar} == {
        e.name: e.value
        for e in RedactionEnv
        if e is not RedactionEnv.MEMORY_SIZE  # Lambda sets that one
    }
    assert tuple(m.value for m in redact.Mode) == contract.REDACTION_MODES
    assert contract.REDACTION_OFF not in contract.REDACTION_MODES
    assert (contract.REDACTION_DEFAULT_MARGIN, contract.REDACTION_MAX_MARGIN) == (redact.DEFAULT_MARGIN,
                                                                                   redact.MAX_MARGIN)  # fmt: skip
    # every variable the function's settings write is one the stack sets
    written = set(RedactionSettings("b", "t", "https://q").to_env())
    assert written <= {*RedactionEnvVar, EnvVar.RESULTS_TABLE, EnvVar.FAILURE_QUEUE_URL}
    module, _, name = contract.REDACTION_HANDLER.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))


@pytest.mark.parametrize(("which", "retries", "max_age"), [("created", 2, 21600), ("existing", 1, 3600)])
def test_async_failures_go_to_the_dead_letter_queue_after_the_configured_retries(
    redaction_synth: Synth, existing_redaction_synth: Synth, which: str, retries: int, max_age: int
) -> None:
    s = redaction_synth if which == "created" else existing_redaction_synth
    function_id, _ = redaction_function(s)
    (config,) = [c["Properties"] for c in s.resources("AWS::Lambda::EventInvokeConfig").values()
                 if c["Properties"]["FunctionName"] == {"Ref": function_id}]  # fmt: skip
    assert (config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"]) == (retries, max_age)
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [dlq_id(s), "Arn"]}


def test_the_rule_hands_every_outcome_event_to_the_function(either: Synth) -> None:
    s = either
    function_id, _ = redaction_function(s)
    rule_id, rule = redaction_rule(s)
    props = rule["Properties"]
    assert props["EventPattern"] == {
        "source": [contract.OUTCOME_EVENT_SOURCE],
        "detail-type": [kind.value for kind in OutcomeEvent],
    }
    assert props["EventPattern"]["detail-type"] == ["Faces Detected", "Image Rejected", "Image Failed", "Image Deleted"]
    assert props["EventBusName"] == "default"  # the bus the outcome events go to (facepipe:eventBus unset)
    assert props["State"] == "ENABLED"
    (target,) = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 24 * 3600}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq_id(s), "Arn"]}}
    # EventBridge may invoke the function, from this rule only, and send to the DLQ, for this rule only
    (permission,) = [p["Properties"] for p in s.resources("AWS::Lambda::Permission").values()
                     if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}]  # fmt: skip
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}
    (queue_policy,) = [p["Properties"] for p in s.resources("AWS::SQS::QueuePolicy").values()
                       if {"Ref": dlq_id(s)} in p["Properties"]["Queues"]]  # fmt: skip
    sends = [st for st in queue_policy["PolicyDocument"]["Statement"]
             if st["Effect"] == "Allow" and st["Condition"]["ArnEquals"]["aws:SourceArn"]
             == {"Fn::GetAtt": [rule_id, "Arn"]}]  # fmt: skip
    assert [(st["Action"], st["Principal"]) for st in sends] == [("sqs:SendMessage",
                                                                  {"Service": "events.amazonaws.com"})]  # fmt: skip


def test_the_functions_errors_raise_an_alarm(either: Synth) -> None:
    s = either
    function_id, _ = redaction_function(s)
    (alarm,) = [a["Properties"] for rid, a in s.resources("AWS::CloudWatch::Alarm").items()
                if rid.startswith("Redaction")]  # fmt: skip
    assert alarm["MetricName"] == "Errors" and alarm["Namespace"] == "AWS/Lambda"
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_id}}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["AlarmActions"] == [{"Ref": one_id(s, "AWS::SNS::Topic")}]


def test_the_output_names_the_redaction_bucket(redaction_synth: Synth) -> None:
    output = redaction_synth.raw["Outputs"][contract.OUTPUT_REDACTED_BUCKET]
    assert output["Value"] == {"Ref": redaction_bucket_id(redaction_synth)}
    assert contract.OUTPUT_REDACTED_BUCKET == "RedactedBucketName"


def test_operators_may_read_copies_and_replay_to_the_redaction_function_and_no_more(redaction_synth: Synth) -> None:
    s = redaction_synth
    output = s.raw["Outputs"][contract.OUTPUT_REDACTION_FUNCTION]
    function_id, _ = redaction_function(s)
    assert output["Value"] == {"Ref": function_id}
    (policy,) = s.resources("AWS::IAM::ManagedPolicy").values()
    document = resolved(s, policy["Properties"]["PolicyDocument"])
    copy = f"arn:aws:s3:::{REDACTED}/{UPLOADS}/team.jpg"
    assert allowed(document, "s3:GetObject", copy)  # show --redacted
    assert allowed(document, "lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_id}")
    assert not allowed(document, "s3:PutObject", copy) and not allowed(document, "s3:DeleteObject", copy)


def test_without_redaction_the_template_holds_nothing_of_it(default_synth: Synth) -> None:
    s = default_synth
    assert "redact" not in json.dumps(s.raw).lower()  # no resource, output, variable or description
    assert s.resources("AWS::Events::Rule") == {}
    handlers = [r["Properties"].get("Handler") for r in s.resources("AWS::Lambda::Function").values()]
    assert contract.REDACTION_HANDLER not in handlers
    assert contract.OUTPUT_REDACTED_BUCKET not in s.raw["Outputs"]
    assert [r["Properties"]["Description"] for r in s.resources("AWS::Lambda::LayerVersion").values()
            if "pillow" in r["Properties"]["Description"].lower()] == []  # fmt: skip


# ---- the role, call by call ---------------------------------------------------------------------------------------
def resolved(s: Synth, document: Any) -> Any:
    """A policy document with its CloudFormation references resolved to the ARNs the calls below name."""
    names = {redaction_bucket_id(s): REDACTED}
    uploads = s.raw["Outputs"][contract.OUTPUT_BUCKET]["Value"]
    if isinstance(uploads, dict):
        names[uploads["Ref"]] = UPLOADS
    arns = {
        "AWS::S3::Bucket": lambda rid: f"arn:aws:s3:::{names.get(rid, rid.lower())}",
        "AWS::DynamoDB::GlobalTable": lambda rid: TABLE_ARN,
        "AWS::SQS::Queue": lambda rid: DLQ_ARN if rid == dlq_id(s) else f"arn:aws:sqs:{REGION}:{ACCOUNT}:{rid}",
        "AWS::Logs::LogGroup": lambda rid: f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{rid}:*",
        "AWS::Lambda::Function": lambda rid: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{rid}",
        "AWS::IAM::Role": lambda rid: f"arn:aws:iam::{ACCOUNT}:role/{rid}",
        "AWS::Events::Rule": lambda rid: f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rid}",
    }
    refs = {"AWS::S3::Bucket": lambda rid: names.get(rid, rid.lower()),
            "AWS::Lambda::Function": lambda rid: rid}  # fmt: skip

    def intrinsic(value: dict[str, Any]) -> Any:
        if "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            if attribute == "StreamArn":
                return STREAM_ARN
            assert attribute == "Arn", value
            return arns[s.raw["Resources"][logical_id]["Type"]](logical_id)
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(str(resolve(p)) for p in parts)
        if "Ref" in value:
            name = value["Ref"]
            return PSEUDO[name] if name in PSEUDO else refs[s.raw["Resources"][name]["Type"]](name)
        return {k: resolve(v) for k, v in value.items()}

    def resolve(value: Any) -> Any:
        if isinstance(value, dict):
            return intrinsic(value)
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    return resolve(document)


def redaction_policy(s: Synth) -> dict[str, Any]:
    _, function = redaction_function(s)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    (policy,) = [p for p in s.resources("AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]]
    assert s.raw["Resources"][role]["Properties"].get("ManagedPolicyArns") is None  # the inline policy is all it has
    document: dict[str, Any] = resolved(s, policy["Properties"]["PolicyDocument"])
    return document


def allowed(document: dict[str, Any], action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    result = IAMPolicy(json.dumps(document)).is_action_permitted(action, resource, incoming_condition_values=context)
    return result == PermissionResult.PERMITTED


def locations(s: Synth) -> tuple[str, list[str], list[str]]:
    """The redaction bucket, the watched objects the function reads, and objects of the watched buckets outside the
    watched prefixes (neither read nor written)."""
    if redaction_bucket_id(s) is not None:
        return REDACTED, [f"{UPLOADS}/photo.jpg", f"{UPLOADS}/team/day 1.png"], []
    watched = [f"{b}/uploads/{k}" for b in WATCHED_BUCKETS for k in ("photo.jpg", "team/day 1.png")]
    return EXISTING_REDACTED, watched, [f"{b}/other/photo.jpg" for b in WATCHED_BUCKETS]


# The calls the redaction function makes (docs/REDACTION.md; lambdas/redaction/processor.py, copies.py), each as
# the IAM action S3, DynamoDB and SQS authorise it as, and Lambda's own with the role (logs, the on-failure record).
def needs(s: Synth) -> list[tuple[str, str, dict[str, str] | None]]:
    bucket, watched, _ = locations(s)
    log_group = redaction_function(s)[1]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]  # its own (resolved())
    calls: list[tuple[str, str, dict[str, str] | None]] = []
    for source in watched:
        copy = f"arn:aws:s3:::{bucket}/{source}"  # the copy of s3://<source bucket>/<key>: <bucket>/<source>/<key>
        calls += [
            ("s3:GetObject", f"arn:aws:s3:::{source}", None),  # GetObject IfMatch=<etag> (unversioned source)
            ("s3:GetObjectVersion", f"arn:aws:s3:::{source}", None),  # GetObject VersionId=...
            ("s3:GetObject", copy, None),  # HeadObject of the copy (and what a conditional delete needs)
            ("s3:PutObject", copy, None),  # PutObject IfMatch / IfNoneMatch="*"
            ("s3:DeleteObject", copy, None),  # DeleteObject IfMatch
        ]
    calls += [
        ("s3:ListBucket", f"arn:aws:s3:::{bucket}", None),  # a HEAD of a missing copy answers 404, not 403
        ("dynamodb:Query", TABLE_ARN, None),  # the image's partition: META and its face chunks
        ("sqs:SendMessage", DLQ_ARN, None),  # failure records, and Lambda's on-failure destination
        ("logs:CreateLogStream", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{log_group}:log-stream:x", None),
        ("logs:PutLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{log_group}:log-stream:x", None),
        ("xray:PutTraceSegments", "*", None),
    ]
    if redaction_bucket_id(s) is None:  # SSE-KMS sources: decrypt through S3 only
        calls.append(("kms:Decrypt", KEY_ARN, VIA_S3))
    return calls


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_redaction_role_allows_every_call_the_function_makes(either: Synth) -> None:
    document = redaction_policy(either)
    refused = [(action, resource) for action, resource, context in needs(either)
               if not allowed(document, action, resource, context)]  # fmt: skip
    assert refused == []


def test_the_redaction_role_writes_to_no_watched_location(either: Synth) -> None:
    s = either
    document = redaction_policy(s)
    statements = document["Statement"]
    actions = sorted({a for st in statements for a in as_list(st["Action"])})
    assert all("*" not in a for a in actions), actions  # every action named: the checks below cover them all
    assert all(st["Effect"] == "Allow" and "NotAction" not in st and "NotResource" not in st for st in statements)
    # Resource "*" is X-Ray's alone (no resource-level permissions); every other action is S3's on S3 ARNs or another
    # service's: the checks below try each of the role's S3 actions on the watched objects
    unscoped = {a for st in statements if st["Resource"] == "*" for a in as_list(st["Action"])}
    assert unscoped == {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    s3_actions = [a for a in actions if a.startswith("s3:")]
    bucket, watched, outside = locations(s)
    writes = ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl", "s3:PutObjectTagging",
              "s3:DeleteObjectTagging", "s3:RestoreObject", "s3:AbortMultipartUpload", "s3:PutObjectRetention",
              "s3:PutObjectLegalHold", "s3:ReplicateObject"]  # fmt: skip
    for source in watched:
        arn = f"arn:aws:s3:::{source}"
        assert [a for a in writes if allowed(document, a, arn)] == [], source
        # of everything the role may do, only the two reads reach a watched object
        assert [a for a in s3_actions if allowed(document, a, arn)] == ["s3:GetObject", "s3:GetObjectVersion"], source
    for source in outside:  # a watched bucket's objects outside the prefixes: not even read
        assert [a for a in s3_actions if allowed(document, a, f"arn:aws:s3:::{source}")] == [], source
    for watched_bucket in {w.split("/", 1)[0] for w in watched}:
        assert [a for a in s3_actions if allowed(document, a, f"arn:aws:s3:::{watched_bucket}")] == []
    # the redaction bucket: no version is ever deleted, nothing but objects and the listing
    assert not allowed(document, "s3:DeleteObjectVersion", f"arn:aws:s3:::{bucket}/{watched[0]}")
    assert not allowed(document, "s3:PutObject", "arn:aws:s3:::some-other-bucket/photo.jpg")
    # the table is read only, the DLQ is only sent to
    assert [a for a in actions if a.startswith("dynamodb:") and allowed(document, a, TABLE_ARN)] == ["dynamodb:Query"]
    assert not allowed(document, "sqs:ReceiveMessage", DLQ_ARN)
    assert not allowed(document, "sqs:DeleteMessage", DLQ_ARN)
    if redaction_bucket_id(s) is None:
        # the key only through S3 in the stack's region (moto checks a condition against the values it is given)
        assert not allowed(document, "kms:Decrypt", KEY_ARN, {"kms:ViaService": f"ec2.{REGION}.amazonaws.com"})
        (decrypt,) = [st for st in statements if "kms:Decrypt" in as_list(st["Action"])]
        assert decrypt["Condition"] == {"StringEquals": VIA_S3} and decrypt["Resource"] == KEY_ARN
        assert not allowed(document, "kms:GenerateDataKey", KEY_ARN, VIA_S3)


def test_cfn_lint_and_parliament_pass_on_the_redaction_templates(
    redaction_synth: Synth, existing_redaction_synth: Synth
) -> None:
    from tests.infra.test_permissions import parliament_findings

    for s in (redaction_synth, existing_redaction_synth):
        assert cfn_lint(s) == ""
        policies = [*s.resources("AWS::IAM::Policy").values(), *s.resources("AWS::IAM::ManagedPolicy").values()]
        for policy in policies:
            document = resolved(s, policy["Properties"]["PolicyDocument"])
            assert parliament_findings(document) == [], document


def test_cdk_nag_finds_nothing_unacknowledged(redaction_synth: Synth, existing_redaction_synth: Synth) -> None:
    # synth() raised if cdk-nag had reported an unacknowledged finding; the report says so too
    for s in (redaction_synth, existing_redaction_synth):
        report = s.outdir / "validation-report.json"
        if report.exists():
            plugin_reports = json.loads(report.read_text())["pluginReports"]
            assert all(r["conclusion"] == "success" for r in plugin_reports), plugin_reports


# ---- the settings -----------------------------------------------------------------------------------------------
REFUSALS: list[tuple[dict[str, object], str]] = [
    ({"redaction": "smudge"}, "facepipe:redaction must be off or blur or pixelate or fill, got 'smudge'"),
    ({"redaction": "blur", "events": "off"}, "facepipe:redaction=blur needs facepipe:events=on"),
    ({"redactionBucket": "my-redacted"}, "facepipe:redactionBucket applies to redacted copies only"),
    ({"redaction": "blur", "redactionBucket": "My_Copies"}, "facepipe:redactionBucket: 'My_Copies' is not an S3"),
    ({"redaction": "blur", "existingBuckets": "my-photos", "redactionBucket": "my-photos"},
     "facepipe:redactionBucket: 'my-photos' is a watched bucket"),
    # whatever the prefixes: the copies' keys start with the source bucket's name, which a prefix may match
    ({"redaction": "blur", "existingBuckets": '["a-b", "my-photos"]', "keyPrefixes": '["uploads/"]',
      "redactionBucket": "my-photos"}, "facepipe:redactionBucket: 'my-photos' is a watched bucket"),
    ({"redactionMargin": "0.2"}, "facepipe:redactionMargin applies to redacted copies only"),
    ({"redaction": "blur", "redactionMargin": "15"}, "facepipe:redactionMargin must be a fraction from 0 to 1"),
    ({"redaction": "blur", "redactionMargin": -0.1}, "facepipe:redactionMargin must be a fraction from 0 to 1"),
    ({"redaction": "blur", "redactionMargin": "nan"}, "facepipe:redactionMargin must be a fraction from 0 to 1"),
    ({"redaction": "blur", "redactionMargin": "15%"}, "facepipe:redactionMargin must be a fraction from 0 to 1"),
]  # fmt: skip


@pytest.mark.parametrize(("values", "says"), REFUSALS)
def test_a_bad_redaction_setting_is_one_line_naming_the_key(values: dict[str, object], says: str) -> None:
    import re

    from infra.settings import ContextError, FacepipeSettings

    with pytest.raises(ContextError, match=re.escape(says)) as caught:
        FacepipeSettings.from_values({f"facepipe:{k}": v for k, v in values.items()})
    assert "\n" not in str(caught.value)


def test_the_redaction_settings_and_their_defaults() -> None:
    from infra.settings import FacepipeSettings

    def read(**values: object) -> FacepipeSettings:
        return FacepipeSettings.from_values({f"facepipe:{k}": v for k, v in values.items()})

    off = read()
    assert (off.redaction, off.redacts, off.redaction_bucket, off.redaction_margin) == ("off", False, None, 0.15)
    assert read(redaction="", redactionBucket="", redactionMargin=None) == off  # empty is the default
    on = read(redaction="Pixelate", redactionBucket="my-copies", redactionMargin=0)
    assert (on.redaction, on.redacts, on.redaction_bucket, on.redaction_margin) == ("pixelate", True, "my-copies", 0)
    assert read(redaction="fill", redactionMargin="1").redaction_margin == 1.0
    # an unwatched bucket next to watched ones is fine
    assert read(redaction="blur", existingBuckets="my-photos", redactionBucket="my-photos-redacted").redacts


def test_a_watched_redaction_bucket_stops_synthesis_with_one_line(tmp_path: Path) -> None:
    context = {"facepipe:existingBuckets": '["my-photos"]', "facepipe:keyPrefixes": '["uploads/"]',
               "facepipe:redaction": "blur", "facepipe:redactionBucket": "my-photos"}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT,
        env={**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDK_OUTDIR": str(tmp_path),
             "CDK_CONTEXT_JSON": json.dumps(context)},
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    (printed,) = result.stderr.strip().splitlines()
    assert printed.startswith("facepipe: context facepipe:redactionBucket: 'my-photos' is a watched bucket"), printed


def test_a_missing_pillow_layer_names_the_make_target(tmp_path: Path) -> None:
    import aws_cdk as cdk

    from infra.redaction import redaction_layer

    with pytest.raises(FileNotFoundError, match=r"run `make redaction-layer`"):
        redaction_layer(cdk.Stack(cdk.App(), "Probe"), "Pillow", layer_dir=tmp_path / "redaction-layer")
