"""The synthesized template: what a deployed facepipe relies on, asserted property by property."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match

from detect_faces import contract
from infra.config import POWERTOOLS_VERSION
from tests.infra.synth import ROOT, Synth, cdk_json_context, cfn_lint

pytestmark = pytest.mark.infra


def policy_statements(s: Synth, role_logical_id: str) -> list[dict[str, Any]]:
    statements = []
    for policy in s.resources("AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def detector_ids(s: Synth) -> tuple[str, str, str]:
    functions = {
        k: v
        for k, v in s.resources("AWS::Lambda::Function").items()
        if v["Properties"].get("Handler", "") == "detect_faces.handler.lambda_handler"
    }
    ((fn_id, fn),) = functions.items()  # the live function
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    ((dlq_id, _),) = dead_letter_queues(s).items()
    return fn_id, role_id, dlq_id


def dead_letter_queues(s: Synth) -> dict[str, dict[str, Any]]:
    """The DLQ of failure records (the outcome events' undelivered queue is another queue: test_events.py)."""
    return {k: v for k, v in s.resources("AWS::SQS::Queue").items() if k.startswith("DeadLetters")}


def backlog_ids(s: Synth) -> tuple[str, str]:
    ((fn_id, fn),) = [
        (k, v) for k, v in s.resources("AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") == contract.BACKLOG_HANDLER
    ]  # fmt: skip
    return fn_id, fn["Properties"]["Role"]["Fn::GetAtt"][0]


# ---- the trigger ------------------------------------------------------------------------------


def test_every_upload_and_removal_reaches_the_function_without_a_suffix_filter(default_synth: Synth) -> None:
    fn_id, _, _ = detector_ids(default_synth)
    _, notifications = default_synth.one("Custom::S3BucketNotifications")
    configs = notifications["Properties"]["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    # created, removed by a request, removed by a lifecycle rule (tests/infra/test_existing_buckets.py quotes S3)
    assert sorted(e for c in configs for e in c["Events"]) == sorted(
        ["s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*"]
    )
    assert all(c["LambdaFunctionArn"] == {"Fn::GetAtt": [fn_id, "Arn"]} for c in configs)
    assert all("Filter" not in c for c in configs)  # suffix filters are case-sensitive: .JPG would be missed


# ---- async invocation: retries, event age, on-failure destination = the DLQ -------------------------


def test_async_failures_go_to_the_dead_letter_queue(default_synth: Synth) -> None:
    fn_id, _, dlq_id = detector_ids(default_synth)
    default_synth.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": fn_id},
            "MaximumRetryAttempts": 2,
            "MaximumEventAgeInSeconds": 21600,
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [dlq_id, "Arn"]}}},
        },
    )


def test_function_runtime_environment_and_tracing(default_synth: Synth) -> None:
    fn_id, _, dlq_id = detector_ids(default_synth)
    props = default_synth.raw["Resources"][fn_id]["Properties"]
    assert props["Runtime"] == "python3.14"
    assert props["Architectures"] == ["arm64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert "ReservedConcurrentExecutions" not in props  # a new account's concurrency limit may be 10
    env = props["Environment"]["Variables"]
    ((table_id, _),) = default_synth.resources("AWS::DynamoDB::GlobalTable").items()
    assert env["RESULTS_TABLE"] == {"Ref": table_id}
    assert env["FAILURE_QUEUE_URL"] == {"Ref": dlq_id}
    assert env["FACE_ATTRIBUTES"] == "DEFAULT"
    assert env["POWERTOOLS_SERVICE_NAME"] == "facepipe"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Facepipe"
    log_group_id = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert default_synth.raw["Resources"][log_group_id]["Properties"]["RetentionInDays"] == 30
    ((layer_id, layer),) = default_synth.resources("AWS::Lambda::LayerVersion").items()  # one, for both functions
    assert props["Layers"] == [{"Ref": layer_id}]
    backlog = default_synth.raw["Resources"][backlog_ids(default_synth)[0]]["Properties"]
    assert backlog["Layers"] == [{"Ref": layer_id}] and backlog["Code"] == props["Code"]  # same asset and layer
    assert backlog["Environment"]["Variables"] == env  # same settings; it reads BACKLOG_DETECT_MAX_ATTEMPTS
    assert backlog["LoggingConfig"]["LogGroup"] != props["LoggingConfig"]["LogGroup"]  # its own log group
    assert POWERTOOLS_VERSION in layer["Properties"]["Description"]


def test_context_overrides_reach_the_template(tuned_synth: Synth) -> None:
    fn_id, _, _ = detector_ids(tuned_synth)
    props = tuned_synth.raw["Resources"][fn_id]["Properties"]
    assert props["ReservedConcurrentExecutions"] == 20
    assert props["Environment"]["Variables"]["FACE_ATTRIBUTES"] == "ALL"
    backlog = tuned_synth.raw["Resources"][backlog_ids(tuned_synth)[0]]["Properties"]
    assert backlog["ReservedConcurrentExecutions"] == 3  # facepipe:backlogConcurrency, its own reservation
    tuned_synth.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig", {"MaximumRetryAttempts": 1, "MaximumEventAgeInSeconds": 3600}
    )
    log_group_id = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert tuned_synth.raw["Resources"][log_group_id]["Properties"]["RetentionInDays"] == 90
    tuned_synth.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"}
    )
    for bucket in tuned_synth.resources("AWS::S3::Bucket").values():
        assert bucket["DeletionPolicy"] == "Delete"


# ---- least privilege ------------------------------------------------------------------------------


def test_function_role_is_least_privilege(default_synth: Synth) -> None:
    _, role_id, dlq_id = detector_ids(default_synth)
    statements = policy_statements(default_synth, role_id)
    role = default_synth.raw["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role  # no AWSLambdaBasicExecutionRole: logs are granted to its own group
    actions: dict[str, list[Any]] = {}
    for st in statements:
        assert st["Effect"] == "Allow"
        for action in as_list(st["Action"]):
            assert "*" not in action, f"wildcard action {action}"
            actions.setdefault(action, []).extend(as_list(st["Resource"]))
    wildcard_ok = {"rekognition:DetectFaces", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    for action, resources_ in actions.items():
        if action not in wildcard_ok:
            assert "*" not in resources_, f"{action} on every resource"
    assert actions["rekognition:DetectFaces"] == ["*"]  # DetectFaces supports no resource-level scoping
    assert set(actions) == wildcard_ok | {
        "logs:CreateLogStream", "logs:PutLogEvents",
        "s3:GetObject", "s3:GetObjectVersion",
        "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
        "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
    }  # fmt: skip
    (bucket_id,) = [
        k for k, v in default_synth.resources("AWS::S3::Bucket").items() if "VersioningConfiguration" in v["Properties"]
    ]
    assert actions["s3:GetObject"] == [{"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]}]
    ((table_id, _),) = default_synth.resources("AWS::DynamoDB::GlobalTable").items()
    assert all(r == {"Fn::GetAtt": [table_id, "Arn"]} for r in actions["dynamodb:UpdateItem"])
    assert all(r == {"Fn::GetAtt": [dlq_id, "Arn"]} for r in actions["sqs:SendMessage"])


# ---- secure storage --------------------------------------------------------------------------------


def test_uploads_bucket_is_private_encrypted_versioned_logged_and_ssl_only(default_synth: Synth) -> None:
    buckets = default_synth.resources("AWS::S3::Bucket")
    ((_uploads_id, uploads),) = [(k, v) for k, v in buckets.items() if "VersioningConfiguration" in v["Properties"]]
    props = uploads["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
    }  # fmt: skip
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse == {"SSEAlgorithm": "AES256"}
    assert props["LoggingConfiguration"]["DestinationBucketName"]["Ref"] in buckets
    assert uploads["DeletionPolicy"] == "Retain"
    for bucket_id in buckets:
        default_synth.template.has_resource_properties(
            "AWS::S3::BucketPolicy",
            {
                "Bucket": {"Ref": bucket_id},
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                    )
                },
            },
        )


def test_results_table_matches_the_function_and_is_protected(default_synth: Synth) -> None:
    _, table = default_synth.one("AWS::DynamoDB::GlobalTable")
    props = table["Properties"]
    assert props["KeySchema"] == [
        {"AttributeName": contract.TABLE_PARTITION_KEY, "KeyType": "HASH"},
        {"AttributeName": contract.TABLE_SORT_KEY, "KeyType": "RANGE"},
    ]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    (index,) = props["GlobalSecondaryIndexes"]
    assert index["IndexName"] == contract.INDEX_BY_KEY
    assert index["KeySchema"] == [
        {"AttributeName": contract.INDEX_PARTITION_KEY, "KeyType": "HASH"},
        {"AttributeName": contract.INDEX_SORT_KEY, "KeyType": "RANGE"},
    ]
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": contract.TTL_ATTRIBUTE, "Enabled": True}
    replica = props["Replicas"][0]
    assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert replica["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"


def test_dead_letter_queue_is_encrypted_ssl_only_and_keeps_14_days(default_synth: Synth) -> None:
    ((dlq_id, dlq),) = dead_letter_queues(default_synth).items()
    assert dlq["Properties"]["SqsManagedSseEnabled"] is True
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600 == contract.DLQ_RETENTION_SECONDS
    default_synth.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": dlq_id}],
            "PolicyDocument": {"Statement": Match.array_with([Match.object_like({"Effect": "Deny"})])},
        },
    )


# ---- monitoring and outputs ------------------------------------------------------------------------


def test_alarms_watch_the_dlq_errors_throttles_and_dropped_events(default_synth: Synth) -> None:
    fn_id, _, dlq_id = detector_ids(default_synth)
    ((topic_id, _),) = default_synth.resources("AWS::SNS::Topic").items()
    backlog_id = backlog_ids(default_synth)[0]
    alarms = {
        a["Properties"]["MetricName"]: a["Properties"]
        for rid, a in default_synth.resources("AWS::CloudWatch::Alarm").items()
        if a["Properties"].get("Dimensions") != [{"Name": "FunctionName", "Value": {"Ref": backlog_id}}]
        and not rid.startswith("OutcomeEvents")  # the outcome events' own alarms: test_events.py
    }
    assert set(alarms) == {"ApproximateNumberOfMessagesVisible", "Errors", "Throttles", "AsyncEventsDropped"}
    assert alarms["ApproximateNumberOfMessagesVisible"]["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}
    ]
    for name in ("Errors", "Throttles", "AsyncEventsDropped"):
        assert alarms[name]["Namespace"] == "AWS/Lambda"
        assert alarms[name]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": fn_id}}]
    for alarm in alarms.values():
        assert alarm["Threshold"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]


def test_the_backlog_function_has_its_own_errors_alarm(default_synth: Synth) -> None:
    backlog_id = backlog_ids(default_synth)[0]
    ((topic_id, _),) = default_synth.resources("AWS::SNS::Topic").items()
    (alarm,) = [
        a["Properties"] for a in default_synth.resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": backlog_id}}]
    ]  # fmt: skip
    assert alarm["MetricName"] == "Errors" and alarm["AlarmActions"] == [{"Ref": topic_id}]


def test_dashboard_shows_the_pipeline(default_synth: Synth) -> None:
    _, dashboard = default_synth.one("AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("ImagesDetected", "FacesFound", "ImagesRejected", "ApproximateNumberOfMessagesVisible", "Duration",
                   "ThrottledRetries", "DetectFacesLatency"):  # fmt: skip
        assert metric in body
    # DetectFaces latency beside the throttled retries, as percentiles on the right axis
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    widgets = json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in parts))["widgets"]
    (widget,) = [w for w in widgets if w["properties"].get("title") == "DetectFaces: throttling and latency"]
    metrics = widget["properties"]["metrics"]
    latency = [m[-1] for m in metrics if "DetectFacesLatency" in m]
    assert {m["stat"] for m in latency} == {"p50", "p99"} and all(m["yAxis"] == "right" for m in latency)
    assert any("ThrottledRetries" in m for m in metrics)


def test_outputs_name_the_bucket_table_queue_and_function(default_synth: Synth) -> None:
    outputs = default_synth.raw["Outputs"]
    assert {"UploadsBucketName", "ResultsTableName", "DeadLetterQueueUrl", "DetectorFunctionName"} <= set(outputs)
    fn_id, _, dlq_id = detector_ids(default_synth)
    assert outputs["DetectorFunctionName"]["Value"] == {"Ref": fn_id}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": dlq_id}


def test_no_physical_names_are_hard_coded(default_synth: Synth) -> None:
    for type_, prop in [("AWS::S3::Bucket", "BucketName"), ("AWS::DynamoDB::GlobalTable", "TableName"),
                        ("AWS::SQS::Queue", "QueueName"), ("AWS::Lambda::Function", "FunctionName")]:  # fmt: skip
        for resource in default_synth.resources(type_).values():
            assert prop not in resource["Properties"]


# ---- checks: cdk-nag, cfn-lint, the CLI path ----------------------------------------------------------


def test_cdk_nag_finds_nothing_unacknowledged(default_synth: Synth, tuned_synth: Synth) -> None:
    # synth() raised if cdk-nag had reported an unacknowledged finding; the report says so too
    for s in (default_synth, tuned_synth):
        report = s.outdir / "validation-report.json"
        if report.exists():
            plugin_reports = json.loads(report.read_text())["pluginReports"]
            assert all(r["conclusion"] == "success" for r in plugin_reports), plugin_reports


def test_cdk_nag_does_fail_synthesis_on_a_finding(tmp_path: Path) -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3

    from app import build_app

    app, stack = build_app(cdk.App(context=cdk_json_context(), outdir=str(tmp_path)))
    s3.Bucket(stack, "CarelessBucket")  # no SSL policy, no access logs
    with pytest.raises(Exception, match=r"(?s)ValidationFailed.*AwsSolutions-S1.*AwsSolutions-S10"):
        app.synth()


def test_reserved_concurrency_follows_the_quota_rule() -> None:
    import aws_cdk as cdk

    from infra.config import FacepipeConfig

    def concurrency(**context: object) -> int | None:
        return FacepipeConfig.from_context(cdk.App(context=cdk_json_context(**context))).function_concurrency

    assert concurrency() is None  # a new account may have only 10: reserve nothing by default
    assert concurrency(detectFacesQuota=50) == 20  # ceil(50 TPS x 0.4 s)
    assert concurrency(detectFacesQuota=5) == 2
    assert concurrency(detectFacesQuota=50, reservedConcurrency=7) == 7  # explicit wins


def test_context_errors_name_the_setting() -> None:
    import aws_cdk as cdk

    from infra.config import ContextError, FacepipeConfig

    for key, value in [("faceAttributes", "SOME"), ("reservedConcurrency", "many"), ("retryAttempts", 3),
                       ("removalPolicy", "maybe"), ("logRetentionDays", 31), ("alarmEmail", "ops"),
                       ("detectFacesQuota", "lots"), ("detectFacesQuota", -5), ("backlogConcurrency", 0)]:  # fmt: skip
        app = cdk.App(context=cdk_json_context(**{key: value}))
        with pytest.raises(ContextError, match=key):
            FacepipeConfig.from_context(app)


def test_the_stack_reads_its_settings_through_the_plain_reader() -> None:
    """FacepipeConfig.from_context (the construct tree's context) is infra/settings.py's reader, which a tool calls
    without jsii: the same settings, the same one-line errors, and the stack named by facepipe:stackName."""
    from dataclasses import asdict

    import aws_cdk as cdk

    from app import build_app
    from infra.config import ContextError, FacepipeConfig
    from infra.settings import FacepipeSettings
    from tests.infra.test_settings import MISTAKES

    def both(**values: object) -> tuple[dict[str, object], dict[str, object]]:
        context = cdk_json_context(**values)
        return asdict(FacepipeConfig.from_context(cdk.App(context=context))), asdict(
            FacepipeSettings.from_values(context)
        )

    tuned = both(faceAttributes="ALL", reservedConcurrency="20", existingBuckets='["my-photos"]', keyPrefixes=["up/"])
    assert tuned[0] == tuned[1] and tuned[0]["key_prefixes"] == ("up/",)
    for values, _ in MISTAKES:
        context = cdk_json_context(**values)
        with pytest.raises(ContextError) as plain:
            FacepipeSettings.from_values(context)
        with pytest.raises(ContextError, match=re.escape(str(plain.value))):
            FacepipeConfig.from_context(cdk.App(context=context))
    _, stack = build_app(cdk.App(context=cdk_json_context(stackName="Faces-Dev")))
    assert stack.stack_name == "Faces-Dev"


def test_cfn_lint_passes_on_the_template(default_synth: Synth, tuned_synth: Synth) -> None:
    for s in (default_synth, tuned_synth):
        assert cfn_lint(s) == ""


def test_npx_cdk_synth_works_offline_as_users_run_it(tmp_path: Path) -> None:
    cdk_bin = ROOT / "node_modules" / ".bin" / "cdk"
    assert cdk_bin.exists(), "node_modules missing: run `make node` (make test does it)"
    assert shutil.which("node"), "node is required"
    env = {
        **os.environ,
        "CDK_DISABLE_VERSION_CHECK": "1",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    result = subprocess.run(
        [str(cdk_bin), "synth", "--no-notices", "--quiet", "--output", str(tmp_path / "out")],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "out" / "Facepipe.template.json").exists()

    # And `python app.py`, run directly, synthesizes the very same template (it reads cdk.json itself)
    direct = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env={**env, "CDK_OUTDIR": str(tmp_path / "direct")},
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert direct.returncode == 0, direct.stderr[-3000:]

    def resources(path: Path) -> dict[str, Any]:  # less what only the CLI adds: path metadata, CDKMetadata
        template = json.loads(path.read_text())
        return {k: {a: v for a, v in r.items() if a != "Metadata"} for k, r in template["Resources"].items()
                if r["Type"] != "AWS::CDK::Metadata"}  # fmt: skip

    via_cli = resources(tmp_path / "out" / "Facepipe.template.json")
    assert resources(tmp_path / "direct" / "Facepipe.template.json") == via_cli


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"CDK_CONTEXT_JSON": json.dumps({"facepipe:alarmEmail": "ops-at-example"})},
         "facepipe: context facepipe:alarmEmail must be an email address, got 'ops-at-example'"),
        ({"CDK_CONTEXT_JSON": json.dumps({"facepipe:retryAttempts": 5})},
         "facepipe: context facepipe:retryAttempts must be between 0 and 2, got 5"),
        ({"CDK_DEFAULT_REGION": "xx-nowhere-1"},
         "facepipe: region xx-nowhere-1 does not offer Amazon Rekognition; set AWS_REGION to one that does"),
    ],
)  # fmt: skip
def test_a_setup_mistake_stops_synthesis_with_one_line(tmp_path: Path, env: dict[str, str], line: str) -> None:
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT,
        env={**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDK_OUTDIR": str(tmp_path), **env},
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    (printed,) = result.stderr.strip().splitlines()
    assert printed.startswith(line), printed


def test_the_layer_is_built_for_the_functions_runtime_and_architecture() -> None:
    from infra.function import ARCHITECTURE, RUNTIME

    makefile = (ROOT / "Makefile").read_text()
    version = RUNTIME.name.removeprefix("python")  # "3.14"
    assert f"--python-version {version}" in makefile
    assert ARCHITECTURE.name == "arm64" and "--platform manylinux2014_aarch64" in makefile
    layer = ROOT / "build" / "powertools-layer" / "python"
    tag = f"cpython-{version.replace('.', '')}-aarch64-linux-gnu"
    compiled = [p.name for p in layer.rglob("*.so")]
    assert all(tag in name for name in compiled), compiled  # any compiled extension is for Lambda's CPU
    assert (layer / "aws_lambda_powertools").is_dir()
    assert not (layer / "aws_xray_sdk").exists() and not (layer / "wrapt").exists()  # no X-Ray SDK
    assert not (layer / "boto3").exists() and not (layer / "botocore").exists()  # the runtime's own
