"""The stack attached to buckets it did not create (facepipe:existingBuckets, keyPrefixes, notifications,
kmsKeyArns): what it synthesizes, and CDK's own notification handler, as deployed, run against moto to show that
attaching keeps the bucket's other consumers and destroying removes only facepipe's entries."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.helpers import REGION
from tests.infra.conftest import KEY_ARN
from tests.infra.synth import ROOT, Synth, cdk_json_context
from tests.infra.test_permissions import allowed, detect_faces_function, function_role_policy, operator_policy

pytestmark = pytest.mark.integration

STACK_ID = f"arn:aws:cloudformation:{REGION}:123456789012:stack/Facepipe/5b6a0b40-0000-0000-0000-000000000000"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:Facepipe-DetectorFunction"


def notification_resources(s: Synth) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["BucketName"]: r["Properties"] for r in s.resources("Custom::S3BucketNotifications").values()
    }


# ---- what the stack synthesizes -------------------------------------------------------------------------------


def test_an_existing_bucket_is_attached_not_created_and_notifies_under_its_prefix(existing_synth: Synth) -> None:
    # the only bucket the stack makes holds Batch Operations reports: no uploads bucket, no access-log bucket
    assert [k for k in existing_synth.resources("AWS::S3::Bucket")] == [
        existing_synth.raw["Outputs"]["ReportsBucketName"]["Value"]["Ref"]
    ]
    props = notification_resources(existing_synth)["my-photos"]
    assert props["Managed"] is False  # merged into the bucket's own configuration, not replacing it
    fn_id, _ = detect_faces_function(existing_synth)
    configs = props["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    assert sorted(e for c in configs for e in c["Events"]) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    assert all(c["Filter"] == {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}} for c in configs)
    assert all(c["LambdaFunctionArn"] == {"Fn::GetAtt": [fn_id, "Arn"]} for c in configs)
    assert existing_synth.resources("AWS::Events::Rule") == {}
    outputs = existing_synth.raw["Outputs"]
    assert outputs["UploadsBucketName"]["Value"] == "my-photos"
    assert outputs["WatchedLocations"]["Value"] == "s3://my-photos/uploads/"
    assert outputs["NotificationDelivery"]["Value"] == "s3"


def test_the_role_reads_exactly_the_watched_prefixes(existing_synth: Synth) -> None:
    role = function_role_policy(existing_synth)
    (read,) = [st for st in role["Statement"] if st.get("Sid") == "ReadUploads"]
    assert read["Resource"] == "arn:aws:s3:::my-photos/uploads/*"
    assert allowed(role, "s3:GetObject", "arn:aws:s3:::my-photos/uploads/team/a.jpg")
    assert allowed(role, "s3:GetObjectVersion", "arn:aws:s3:::my-photos/uploads/a.jpg")
    assert not allowed(role, "s3:GetObject", "arn:aws:s3:::my-photos/private/a.jpg")
    assert not allowed(role, "s3:GetObject", "arn:aws:s3:::other-bucket/uploads/a.jpg")
    assert not any("kms:" in json.dumps(st) for st in role["Statement"])  # no key given, no KMS grant
    assert not any("kms:" in json.dumps(st) for st in operator_policy(existing_synth)["Statement"])
    operators = operator_policy(existing_synth)
    assert allowed(operators, "s3:GetObject", "arn:aws:s3:::my-photos/uploads/a.jpg")
    assert not allowed(operators, "s3:GetObject", "arn:aws:s3:::my-photos/private/a.jpg")
    (listing,) = [st for st in operators["Statement"] if st.get("Sid") == "ListImages"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["uploads/*"]}}


def test_eventbridge_delivery_is_a_rule_with_the_same_failure_path(eventbridge_synth: Synth) -> None:
    s = eventbridge_synth
    fn_id, _ = detect_faces_function(s)
    assert len(s.resources("AWS::S3::Bucket")) == 1  # the reports bucket only
    for bucket in ("my-photos", "archive.example"):
        assert notification_resources(s)[bucket]["NotificationConfiguration"] == {"EventBridgeConfiguration": {}}
    (rule,) = s.resources("AWS::Events::Rule").values()
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created", "Object Deleted"],
        "detail": {"bucket": {"name": ["my-photos", "archive.example"]},
                   "object": {"key": [{"prefix": "uploads/"}, {"prefix": "incoming/"}]}},
    }  # fmt: skip
    (target,) = rule["Properties"]["Targets"]
    ((dlq_id, _),) = s.resources("AWS::SQS::Queue").items()
    assert target["Arn"] == {"Fn::GetAtt": [fn_id, "Arn"]}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq_id, "Arn"]}}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
    # what the function does with the event is Lambda's async config: the on-failure record of S3 delivery
    (invoke_config,) = s.resources("AWS::Lambda::EventInvokeConfig").values()
    destination = invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == {"Fn::GetAtt": [dlq_id, "Arn"]}
    permissions = [p["Properties"] for p in s.resources("AWS::Lambda::Permission").values()]
    assert [p["Principal"] for p in permissions] == ["events.amazonaws.com"]
    assert permissions[0]["FunctionName"] == {"Fn::GetAtt": [fn_id, "Arn"]}
    (queue_policy,) = s.resources("AWS::SQS::QueuePolicy").values()
    principals = [st.get("Principal") for st in queue_policy["Properties"]["PolicyDocument"]["Statement"]]
    assert {"Service": "events.amazonaws.com"} in principals  # EventBridge may write its DLQ message


def test_kms_decrypt_is_granted_for_the_given_keys_only_through_s3(eventbridge_synth: Synth) -> None:
    role = function_role_policy(eventbridge_synth)
    (decrypt,) = [st for st in role["Statement"] if st.get("Sid") == "DecryptUploads"]
    assert decrypt["Action"] == "kms:Decrypt" and decrypt["Resource"] == KEY_ARN
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}
    operators = operator_policy(eventbridge_synth)  # `show` reads those objects too
    (decrypt_images,) = [st for st in operators["Statement"] if st.get("Sid") == "DecryptImages"]
    assert decrypt_images["Resource"] == KEY_ARN and decrypt_images["Condition"] == decrypt["Condition"]
    (read,) = [st for st in role["Statement"] if st.get("Sid") == "ReadUploads"]
    assert sorted(read["Resource"]) == sorted(f"arn:aws:s3:::{b}/{p}*" for b in ("my-photos", "archive.example")
                                              for p in ("uploads/", "incoming/"))  # fmt: skip


def test_cfn_lint_and_parliament_pass_on_every_combination(existing_synth: Synth, eventbridge_synth: Synth) -> None:
    from parliament import analyze_policy_string

    from tests.infra.test_permissions import resolved

    for s in (existing_synth, eventbridge_synth):
        templates = [str(p) for p in s.outdir.glob("*.template.json")]
        result = subprocess.run(
            [str(Path(sys.executable).parent / "cfn-lint"), *templates],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        policies = [*s.resources("AWS::IAM::Policy").values(), *s.resources("AWS::IAM::ManagedPolicy").values()]
        for policy in policies:
            document = resolved(s, policy["Properties"]["PolicyDocument"])
            assert analyze_policy_string(json.dumps(document)).findings == [], document


@pytest.mark.parametrize(
    ("context", "says"),
    [
        ({"existingBuckets": '["My_Photos"]'}, "'My_Photos' is not an S3 bucket name"),
        ({"keyPrefixes": '["uploads/"]'}, "keyPrefixes applies to existing buckets only"),
        ({"existingBuckets": "bucket-1", "keyPrefixes": '["a/", "a/b/"]'}, "'a/' already covers 'a/b/'"),
        ({"existingBuckets": "bucket-1", "keyPrefixes": '["/a"]'}, "must not start with '/'"),
        ({"existingBuckets": "bucket-1", "notifications": "sqs"}, "must be s3 or eventbridge"),
        ({"existingBuckets": "bucket-1", "kmsKeyArns": '["alias/photos"]'}, "an alias does not work"),
        ({"existingBuckets": '["b1"'}, "is not a JSON list"),
    ],
)  # fmt: skip
def test_a_context_mistake_is_one_line_naming_the_key(context: dict[str, Any], says: str) -> None:
    import aws_cdk as cdk

    from infra.config import ContextError, FacepipeConfig

    with pytest.raises(ContextError, match=says) as caught:
        FacepipeConfig.from_context(cdk.App(context=cdk_json_context(**context)))
    assert "\n" not in str(caught.value) and "facepipe:" in str(caught.value)


def test_lists_come_as_json_comma_separated_or_lists() -> None:
    import aws_cdk as cdk

    from infra.config import FacepipeConfig

    for value in ('["a-bucket", "b-bucket"]', "a-bucket, b-bucket", ["a-bucket", "b-bucket", "a-bucket"]):
        config = FacepipeConfig.from_context(cdk.App(context=cdk_json_context(existingBuckets=value)))
        assert config.existing_buckets == ("a-bucket", "b-bucket")
        assert config.watched_prefixes == ("",)


# ---- CDK's notification handler, as deployed, against moto ----------------------------------------------------


def inline_handler_source(s: Synth) -> str:
    marker = 'AWS CloudFormation handler for "Custom::S3BucketNotifications'
    (handler,) = [
        r
        for r in s.resources("AWS::Lambda::Function").values()
        if r["Properties"].get("Description", "").startswith(marker)
    ]
    return str(handler["Properties"]["Code"]["ZipFile"])


def test_local_mode_runs_the_handler_code_the_stack_deploys(existing_synth: Synth) -> None:
    import ast

    from facepipe.local.attach import cdk_handler_source

    # the template inlines it with its comments stripped: the same program, statement for statement
    deployed, local = ast.parse(inline_handler_source(existing_synth)), ast.parse(cdk_handler_source())
    assert ast.dump(deployed) == ast.dump(local)
    assert any(isinstance(node, ast.FunctionDef) and node.name == "handle_unmanaged" for node in deployed.body)


class Bucket:
    """A bucket with another consumer (an SQS queue for new objects under exports/), in moto."""

    def __init__(self, name: str = "my-photos") -> None:
        self.name = name
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.s3.create_bucket(Bucket=name)
        self.queue = self.sqs.create_queue(QueueName="their-app")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.theirs = {"Id": "their-app", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
                       "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "exports/"}]}}}  # fmt: skip
        self.s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration={"QueueConfigurations": [self.theirs]}
        )
        self.drain()  # the s3:TestEvent

    def drain(self) -> list[str]:
        keys = []
        for m in self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", []):
            keys += [r["s3"]["object"]["key"] for r in json.loads(m["Body"]).get("Records", [])]
            self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])
        return keys

    def config(self) -> dict[str, Any]:
        found = self.s3.get_bucket_notification_configuration(Bucket=self.name)
        found.pop("ResponseMetadata")
        return found

    def their_app_still_hears(self, key: str) -> bool:
        self.s3.put_object(Bucket=self.name, Key=key, Body=b"report")
        return [k.replace("%2F", "/") for k in self.drain()] == [key]


@pytest.fixture
def bucket() -> Iterator[Bucket]:
    with mock_aws():
        from facepipe.local import moto_patches

        moto_patches.install()  # S3's overlap rule, EventBridgeConfiguration in GET
        yield Bucket()


def deployed_configuration(s: Synth, bucket: str = "my-photos") -> dict[str, Any]:
    """The resource's NotificationConfiguration with the function's ARN as CloudFormation resolves it."""
    text = json.dumps(notification_resources(s)[bucket]["NotificationConfiguration"])
    fn_id, _ = detect_faces_function(s)
    return dict(json.loads(text.replace(json.dumps({"Fn::GetAtt": [fn_id, "Arn"]}), json.dumps(FUNCTION_ARN))))


def test_deploy_keeps_the_other_consumer_and_destroy_removes_only_ours(existing_synth: Synth, bucket: Bucket) -> None:
    from facepipe.local.attach import BucketAttachment, load_handler

    handler = load_handler(bucket.s3, inline_handler_source(existing_synth))
    ours = BucketAttachment(bucket.s3, bucket="my-photos", configuration=deployed_configuration(existing_synth),
                            stack_id=STACK_ID, handler=handler)  # fmt: skip
    ours.attach()  # cdk deploy
    config = bucket.config()
    assert [c["Id"] for c in config["QueueConfigurations"]] == ["their-app"]
    lambdas = config["LambdaFunctionConfigurations"]
    assert sorted(e for c in lambdas for e in c["Events"]) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    assert all(c["Id"].startswith(STACK_ID + "-") and c["LambdaFunctionArn"] == FUNCTION_ARN for c in lambdas)
    assert bucket.their_app_still_hears("exports/monday.csv")

    ours.detach()  # cdk destroy
    assert bucket.config() == {"QueueConfigurations": [bucket.theirs]}
    assert bucket.their_app_still_hears("exports/tuesday.csv")


def test_eventbridge_is_switched_on_beside_the_other_consumer_and_left_on(eventbridge_synth: Synth, bucket: Bucket):
    from facepipe.local.attach import BucketAttachment, load_handler

    handler = load_handler(bucket.s3, inline_handler_source(eventbridge_synth))
    ours = BucketAttachment(bucket.s3, bucket="my-photos", configuration=deployed_configuration(eventbridge_synth),
                            stack_id=STACK_ID, handler=handler)  # fmt: skip
    ours.attach()
    assert bucket.config() == {"QueueConfigurations": [bucket.theirs], "EventBridgeConfiguration": {}}
    assert bucket.their_app_still_hears("exports/monday.csv")
    ours.detach()
    # CDK cannot tell whether someone else relies on EventBridge, so it leaves it on (docs/CONFIGURATION.md)
    assert bucket.config() == {"QueueConfigurations": [bucket.theirs], "EventBridgeConfiguration": {}}
    assert bucket.their_app_still_hears("exports/tuesday.csv")


def test_an_overlapping_consumer_makes_the_deploy_fail_with_s3s_message(existing_synth: Synth, bucket: Bucket):
    from facepipe.local.attach import AttachError, BucketAttachment, load_handler

    everything = {**bucket.theirs, "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": ""}]}}}
    everything.pop("Filter")  # their app takes every created object: facepipe's uploads/ entry would overlap
    bucket.s3.put_bucket_notification_configuration(
        Bucket="my-photos", NotificationConfiguration={"QueueConfigurations": [everything]}
    )
    handler = load_handler(bucket.s3, inline_handler_source(existing_synth))
    ours = BucketAttachment(bucket.s3, bucket="my-photos", configuration=deployed_configuration(existing_synth),
                            stack_id=STACK_ID, handler=handler)  # fmt: skip
    with pytest.raises(AttachError, match="overlapping suffixes in two rules if the prefixes are overlapping"):
        ours.attach()
    assert bucket.config() == {"QueueConfigurations": [everything]}  # left as it was


def test_a_prefix_change_redeployed_from_a_fresh_handler_process_replaces_only_ours(
    existing_synth: Synth, bucket: Bucket
) -> None:
    """CDK's handler recognises its earlier entries by Python's hash() of their content, which differs between
    processes (aws/aws-cdk#31303 asked whether that orphans entries). It recomputes both sides in the one
    process that handles the Update, so a cold handler still finds and replaces them.

    What it does to the other consumer's entry on an Update: it blanks its Id while hashing (get_id sets
    n['Id'] = ''), so S3 names it anew. Delivery is untouched; a tool that tracks that entry by its Id sees it
    renamed. docs/CONFIGURATION.md says so."""
    import builtins

    from facepipe.local.attach import BucketAttachment, load_handler

    first = load_handler(bucket.s3, inline_handler_source(existing_synth))
    ours = BucketAttachment(bucket.s3, bucket="my-photos", configuration=deployed_configuration(existing_synth),
                            stack_id=STACK_ID, handler=first)  # fmt: skip
    ours.attach()
    later = load_handler(bucket.s3, inline_handler_source(existing_synth))
    later["hash"] = lambda value: builtins.hash(value) ^ 0x5DEECE66D  # another process: another hash seed
    ours.handler = later
    moved = json.loads(json.dumps(ours.configuration).replace('"uploads/"', '"incoming/"'))
    ours.update(moved)
    config = bucket.config()
    prefixes = [c["Filter"]["Key"]["FilterRules"][0]["Value"] for c in config["LambdaFunctionConfigurations"]]
    assert prefixes == ["incoming/", "incoming/"]
    (theirs,) = config["QueueConfigurations"]
    assert {**theirs, "Id": "their-app"} == bucket.theirs and theirs["Id"] != "their-app"  # renamed, same entry
    assert bucket.their_app_still_hears("exports/wednesday.csv")
    ours.detach()
    assert bucket.config() == {"QueueConfigurations": [theirs]}
    assert bucket.their_app_still_hears("exports/thursday.csv")


def test_the_cdk_cli_synthesizes_an_attached_eventbridge_stack(tmp_path) -> None:
    """The issue's own command, as users type it (context values as strings, a region known to the CLI)."""
    import os
    import shutil

    cdk_bin = ROOT / "node_modules" / ".bin" / "cdk"
    assert cdk_bin.exists() and shutil.which("node"), "node_modules missing: run `make node` (make test does it)"
    env = {**os.environ, "CDK_DISABLE_VERSION_CHECK": "1", "CDK_DISABLE_CLI_TELEMETRY": "true",
           "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "AWS_REGION": REGION}  # fmt: skip
    result = subprocess.run(
        [str(cdk_bin), "synth", "--no-notices", "--quiet", "--output", str(tmp_path),
         "-c", 'facepipe:existingBuckets=["my-photos"]', "-c", 'facepipe:keyPrefixes=["uploads/"]',
         "-c", "facepipe:notifications=eventbridge"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    resources = json.loads((tmp_path / "Facepipe.template.json").read_text())["Resources"]
    buckets = [k for k, r in resources.items() if r["Type"] == "AWS::S3::Bucket"]
    assert [k for k in buckets if not k.startswith("Reports")] == []  # no uploads bucket (nor its access logs)
    (rule,) = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    assert rule["Properties"]["EventPattern"]["detail"] == {
        "bucket": {"name": ["my-photos"]}, "object": {"key": [{"prefix": "uploads/"}]}}  # fmt: skip
    reads = [st["Resource"] for r in resources.values() if r["Type"] == "AWS::IAM::Policy"
             for st in r["Properties"]["PolicyDocument"]["Statement"] if st.get("Sid") == "ReadUploads"]  # fmt: skip
    assert reads == ["arn:aws:s3:::my-photos/uploads/*"] * 2  # the live function's and the backlog function's
