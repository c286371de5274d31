"""The stack attached to buckets it did not create (facepipe:existingBuckets, keyPrefixes, notifications,
kmsKeyArns): what it synthesizes, and CDK's own notification handler, as deployed, run against moto to show that
attaching keeps the bucket's other consumers and destroying removes only facepipe's entries."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from tests.helpers import REGION
from tests.infra.conftest import KEY_ARN
from tests.infra.synth import ROOT, Synth, cdk_json_context, cfn_lint
from tests.infra.test_permissions import allowed, detect_faces_function, function_role_policy, operator_policy

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import QueueConfigurationTypeDef


# Every change to an object, in the notification event types S3 has for them: created, removed by a request, and
# removed by a lifecycle rule. The S3 user guide ("Supported event types for SQS, SNS, and Lambda") on
# s3:ObjectRemoved:*: "You will not receive event notifications from automatic deletes from lifecycle policies or
# from failed operations." Lifecycle deletions are s3:LifecycleExpiration:Delete and
# s3:LifecycleExpiration:DeleteMarkerCreated ("Configuring S3 Lifecycle event notifications").
EVERY_CHANGE = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*")
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
    assert sorted(e for c in configs for e in c["Events"]) == sorted(EVERY_CHANGE)
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
    ((dlq_id, _),) = {k: v for k, v in s.resources("AWS::SQS::Queue").items() if k.startswith("DeadLetters")}.items()
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
    (queue_policy,) = [p for p in s.resources("AWS::SQS::QueuePolicy").values()
                       if p["Properties"]["Queues"] == [{"Ref": dlq_id}]]  # fmt: skip
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


def test_cfn_lint_and_parliament_pass_on_every_combination(
    existing_synth: Synth, eventbridge_synth: Synth, special_synth: Synth, special_eventbridge_synth: Synth
) -> None:
    from tests.infra.test_permissions import parliament_findings, resolved

    for s in (existing_synth, eventbridge_synth, special_synth, special_eventbridge_synth):
        assert cfn_lint(s) == ""
        policies = [*s.resources("AWS::IAM::Policy").values(), *s.resources("AWS::IAM::ManagedPolicy").values()]
        for policy in policies:
            document = resolved(s, policy["Properties"]["PolicyDocument"])
            assert parliament_findings(document) == [], document


# ---- key prefixes with special characters ------------------------------------------------------------------------
# The S3 user guide, "Configuring event notifications using object key name filtering": "If your prefix or suffix
# contains a space, you must replace it with the "+" character. If you use any other special characters in the value
# of the prefix or suffix, you must enter them in URL-encoded (percent-encoded) format." S3 matches the filter against
# the key as its events carry it ("Event message structure": "The object key name value is URL encoded. For example,
# "red flower.jpg" becomes "red+flower.jpg""). moto matches filters against raw keys and would deliver under a raw
# filter that S3 never matches, so these tests assert S3's rule, not moto's.


@pytest.mark.parametrize(
    ("prefix", "encoded"),
    [
        ("uploads/", "uploads/"),  # the user guide's own examples ("images/") are written as they are
        ("fotos/größe/", "fotos/gr%C3%B6%C3%9Fe/"),  # UTF-8, percent-encoded
        ("Camera Uploads/", "Camera+Uploads/"),  # "you must replace it with the "+" character"
        ("a+b/", "a%2Bb/"),  # a literal plus is not a space
        ("dt=2026-11-28/", "dt%3D2026-11-28/"),  # aws/aws-cdk#28012: "schemaVersion%3D1/" matched, "=1/" did not
        ("50%/", "50%25/"),
        ("x~y/", "x%7Ey/"),  # not among the user guide's safe characters: encoded
        ("a_b-c.d/", "a_b-c.d/"),
    ],
)
def test_the_filter_form_of_a_prefix_is_the_url_encoded_key_the_function_decodes(prefix: str, encoded: str) -> None:
    from urllib.parse import unquote_plus

    from detect_faces.subscriptions import notification_form

    assert notification_form(prefix) == encoded
    assert unquote_plus(encoded) == prefix  # the function decodes event keys with unquote_plus (model.py)


def test_a_prefix_with_special_characters_is_encoded_in_the_filter_and_raw_in_iam(special_synth: Synth) -> None:
    configs = notification_resources(special_synth)["my-photos"]["NotificationConfiguration"][
        "LambdaFunctionConfigurations"
    ]
    events: dict[str, set[str]] = {}
    for c in configs:
        ((rule,),) = [c["Filter"]["Key"]["FilterRules"]]
        events.setdefault(rule["Value"], set()).update(c["Events"])
    assert events == {"fotos/gr%C3%B6%C3%9Fe/": set(EVERY_CHANGE), "Camera+Uploads/": set(EVERY_CHANGE)}
    # IAM matches raw keys: the grants keep the prefix as it is
    raw = ["arn:aws:s3:::my-photos/fotos/größe/*", "arn:aws:s3:::my-photos/Camera Uploads/*"]
    for document in (function_role_policy(special_synth), operator_policy(special_synth)):
        (read,) = [st for st in document["Statement"] if st.get("Sid") in ("ReadUploads", "ReadImages")]
        assert sorted(read["Resource"]) == sorted(raw)
        assert allowed(document, "s3:GetObject", "arn:aws:s3:::my-photos/Camera Uploads/team.jpg")
        assert allowed(document, "s3:GetObject", "arn:aws:s3:::my-photos/fotos/größe/a.jpg")
        assert not allowed(document, "s3:GetObject", "arn:aws:s3:::my-photos/Camera+Uploads/team.jpg")
    (listing,) = [st for st in operator_policy(special_synth)["Statement"] if st.get("Sid") == "ListImages"]
    assert sorted(listing["Condition"]["StringLike"]["s3:prefix"]) == ["Camera Uploads/*", "fotos/größe/*"]
    watched = special_synth.raw["Outputs"]["WatchedLocations"]["Value"]
    assert watched == "s3://my-photos/fotos/größe/ s3://my-photos/Camera Uploads/"


def test_the_eventbridge_rule_matches_the_raw_prefix(special_eventbridge_synth: Synth) -> None:
    (rule,) = special_eventbridge_synth.resources("AWS::Events::Rule").values()
    assert rule["Properties"]["EventPattern"]["detail"]["object"] == {
        "key": [{"prefix": "fotos/größe/"}, {"prefix": "Camera Uploads (2019)/"}]
    }  # EventBridge sends keys as they are (tests/function/test_eventbridge.py)
    (read,) = [
        st for st in function_role_policy(special_eventbridge_synth)["Statement"] if st.get("Sid") == "ReadUploads"
    ]
    assert "arn:aws:s3:::my-photos/Camera Uploads (2019)/*" in read["Resource"]


def test_every_notification_carries_every_change_of_an_object(existing_synth: Synth, special_synth: Synth) -> None:
    """Created, removed, and removed by a lifecycle rule, on each notification entry: the same set of changes that
    EventBridge's Object Created / Object Deleted carry (Object Deleted includes "Lifecycle Expiration")."""
    for s in (existing_synth, special_synth):
        configs = notification_resources(s)["my-photos"]["NotificationConfiguration"]["LambdaFunctionConfigurations"]
        by_prefix: dict[str, list[str]] = {}
        for c in configs:
            by_prefix.setdefault(c["Filter"]["Key"]["FilterRules"][0]["Value"], []).extend(c["Events"])
        assert all(sorted(events) == sorted(EVERY_CHANGE) for events in by_prefix.values()), by_prefix


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
        # IAM reads * and ? in a resource as wildcards and ${...} as a variable: the grant would not be the prefix
        ({"existingBuckets": "bucket-1", "keyPrefixes": '["raw*/"]'}, "'raw\\*/' has '\\*'"),
        ({"existingBuckets": "bucket-1", "keyPrefixes": '["what?/"]'}, "'what\\?/' has '\\?'"),
        ({"existingBuckets": "bucket-1", "keyPrefixes": '["${aws:username}/"]'}, "has '\\$\\{'"),
        ({"existingBuckets": "bucket-1", "keyPrefixes": '["tab\\there/"]'}, "control character"),
        # the user guide counts ( ) ! ' as safe characters (written raw in a filter), while the form encoding of
        # keys in events ("application/x-www-form-urlencoded", "Event message structure") escapes them: which form S3
        # matches is not pinned down, so S3 delivery refuses them and points to EventBridge (raw keys)
        ({"existingBuckets": "bucket-1", "keyPrefixes": '["Camera (2019)/"]'}, "facepipe:notifications=eventbridge"),
        ({"existingBuckets": "bucket-1", "keyPrefixes": '["it\'s/"]'}, "has \"'\""),
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
        self.theirs: QueueConfigurationTypeDef = {"Id": "their-app", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
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
        config: dict[str, Any] = {k: v for k, v in found.items() if k != "ResponseMetadata"}
        return config

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
    assert sorted(e for c in lambdas for e in c["Events"]) == sorted(EVERY_CHANGE)
    assert all(c["Id"].startswith(STACK_ID + "-") and c["LambdaFunctionArn"] == FUNCTION_ARN for c in lambdas)
    assert bucket.their_app_still_hears("exports/monday.csv")

    ours.detach()  # cdk destroy
    assert bucket.config() == {"QueueConfigurations": [bucket.theirs]}
    assert bucket.their_app_still_hears("exports/tuesday.csv")


def test_eventbridge_is_switched_on_beside_the_other_consumer_and_left_on(
    eventbridge_synth: Synth, bucket: Bucket
) -> None:
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


def test_an_overlapping_consumer_makes_the_deploy_fail_with_s3s_message(existing_synth: Synth, bucket: Bucket) -> None:
    from facepipe.local.attach import AttachError, BucketAttachment, load_handler

    everything = bucket.theirs.copy()
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


def test_local_modes_moto_matches_a_filter_against_the_encoded_key_as_s3_does(bucket: Bucket) -> None:
    """S3 matches a notification filter against the URL-encoded key (the user guide text above this file's prefix
    tests): a raw "Camera Uploads/" filter never matches, "Camera+Uploads/" does. moto 5.2.5 matches raw keys;
    local mode patches it to match as S3 does (facepipe/local/moto_patches.py)."""
    arn = bucket.sqs.get_queue_attributes(QueueUrl=bucket.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def only(prefix: str) -> None:
        entry: QueueConfigurationTypeDef = {"Id": "their-app", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
                 "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}}  # fmt: skip
        bucket.s3.put_bucket_notification_configuration(
            Bucket=bucket.name, NotificationConfiguration={"QueueConfigurations": [entry]}
        )
        bucket.drain()  # the s3:TestEvent

    only("Camera Uploads/")
    bucket.s3.put_object(Bucket=bucket.name, Key="Camera Uploads/a.jpg", Body=b"x")
    assert bucket.drain() == []
    only("Camera+Uploads/")
    bucket.s3.put_object(Bucket=bucket.name, Key="Camera Uploads/b.jpg", Body=b"x")
    assert bucket.drain() == ["Camera+Uploads/b.jpg"]  # the key as S3 writes it in an event: "/" as it is
    only("fotos/gr%C3%B6%C3%9Fe/")
    bucket.s3.put_object(Bucket=bucket.name, Key="fotos/größe/c.jpg", Body=b"x")
    bucket.s3.put_object(Bucket=bucket.name, Key="fotos/grosse/d.jpg", Body=b"x")
    assert bucket.drain() == ["fotos/gr%C3%B6%C3%9Fe/c.jpg"]


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
    assert prefixes == ["incoming/"] * len(EVERY_CHANGE)
    (theirs,) = config["QueueConfigurations"]
    assert {**theirs, "Id": "their-app"} == bucket.theirs and theirs["Id"] != "their-app"  # renamed, same entry
    assert bucket.their_app_still_hears("exports/wednesday.csv")
    ours.detach()
    assert bucket.config() == {"QueueConfigurations": [theirs]}
    assert bucket.their_app_still_hears("exports/thursday.csv")


def test_the_cdk_cli_synthesizes_an_attached_eventbridge_stack(tmp_path: Path) -> None:
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
