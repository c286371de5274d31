"""facepipe doctor against an account set up like a healthy one (moto where it has the API; botocore Stubbers,
which check every parameter against the real API model, for Lambda's account settings and async config and for
Service Quotas), then one broken setup per check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from detect_faces import contract
from facepipe.cli import main
from facepipe.cli.doctor import cdk_context_flags
from facepipe.common import notifications as s3_notifications
from facepipe.ops import doctor
from tests.helpers import REGION, fail_calls

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
STACK, BUCKET, FUNCTION, QUEUE = "Facepipe", "uploads", "detect-faces-fn", "dlq"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"
# created, removed by a request, removed by a lifecycle rule (tests/infra/test_existing_buckets.py quotes S3)
EVERY_CHANGE = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*")


class Account:
    """A healthy facepipe account and stack; tests break one thing each."""

    def __init__(self) -> None:
        self.clients: dict[str, Any] = {
            name: boto3.client(name, region_name=REGION)
            for name in ("sts", "ssm", "cloudformation", "s3", "cloudwatch", "sns", "sqs")
        }
        self.clients["ssm"].put_parameter(Name=doctor.BOOTSTRAP_PARAMETER, Value="30", Type="String")
        s3 = self.clients["s3"]
        s3.create_bucket(Bucket=BUCKET)
        self.notify(list(EVERY_CHANGE))
        queue_url = self.clients["sqs"].create_queue(QueueName=QUEUE)["QueueUrl"]
        self.topic = self.clients["sns"].create_topic(Name="alarms")["TopicArn"]
        self.clients["sns"].subscribe(TopicArn=self.topic, Protocol="email", Endpoint="ops@example.com")
        self.alarm(self.topic)
        outputs = {contract.OUTPUT_BUCKET: BUCKET, contract.OUTPUT_TABLE: "results", contract.OUTPUT_DLQ_URL: queue_url,
                   contract.OUTPUT_FUNCTION: FUNCTION, contract.OUTPUT_ALARM_TOPIC: self.topic}  # fmt: skip
        template = {"Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
                    "Outputs": {k: {"Value": v} for k, v in outputs.items()}}  # fmt: skip
        self.clients["cloudformation"].create_stack(StackName=STACK, TemplateBody=json.dumps(template))
        self.lambda_ = boto3.client("lambda", region_name=REGION)
        self.quotas = boto3.client("service-quotas", region_name=REGION)
        self.lambda_stub, self.quota_stub = Stubber(self.lambda_), Stubber(self.quotas)
        self.clients.update({"lambda": self.lambda_, "service-quotas": self.quotas})
        self.limits = {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": 1000}
        self.invoke_config: dict[str, Any] = {
            "FunctionArn": FUNCTION_ARN,
            "MaximumRetryAttempts": 2,
            "MaximumEventAgeInSeconds": 21600,
            "DestinationConfig": {"OnFailure": {"Destination": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}"}},
        }
        self.tps = 50.0
        self.account_settings: dict[str, Any] | None = None  # Lambda's GetAccountSettings answer, when not the limits

    def notify(self, events: list[str]) -> None:
        self.clients["s3"].put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "LambdaFunctionConfigurations": [{"LambdaFunctionArn": FUNCTION_ARN, "Events": events}]
            },
        )

    def alarm(self, topic: str) -> None:
        self.clients["cloudwatch"].put_metric_alarm(
            AlarmName="dlq", MetricName="ApproximateNumberOfMessagesVisible", Namespace="AWS/SQS", Statistic="Sum",
            Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
            AlarmActions=[topic],
        )  # fmt: skip

    @contextmanager
    def stubbed(self, stack: bool) -> Iterator[None]:
        """Lambda's and Service Quotas' answers for one run, in the order doctor asks."""
        answer = {"AccountLimit": self.limits} if self.account_settings is None else self.account_settings
        self.lambda_stub.add_response("get_account_settings", answer)
        quota = {"ServiceCode": "rekognition", "QuotaName": "Transactions per second per account for the Amazon "
                 "Rekognition Image operation DetectFaces", "QuotaCode": "L-1", "Value": self.tps}  # fmt: skip
        self.quota_stub.add_response("list_service_quotas", {"Quotas": [quota]}, {"ServiceCode": "rekognition"})
        if stack:
            self.lambda_stub.add_response(
                "get_function_event_invoke_config", self.invoke_config, {"FunctionName": FUNCTION}
            )
        with self.lambda_stub, self.quota_stub:
            yield

    def run(self, plan: doctor.Plan | None = None, stack: str | None = STACK, region: str = REGION) -> dict[str, Any]:
        with self.stubbed(bool(stack)):
            checks = doctor.run(self.clients.__getitem__, region, plan or doctor.Plan(reserved_concurrency=20), stack)
        return {c.name: c for c in checks}

    def cli(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
        """`facepipe doctor --stack Facepipe --reserved-concurrency 20 ARGS` against this account."""
        return self.doctor(monkeypatch, capsys, "--stack", STACK, "--reserved-concurrency", "20", *args)

    def doctor(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
    ) -> tuple[int, str]:
        """`facepipe doctor ARGV` against this account, in the current directory's project: its exit code and what
        it printed."""
        account = self

        class Session:
            region_name = REGION

            def client(self, service: str) -> Any:
                return account.clients[service]

        monkeypatch.setattr(boto3.session, "Session", lambda *a, **k: Session())
        with self.stubbed(stack="--stack" in argv):
            code = main(["doctor", *argv])
        out, err = capsys.readouterr()
        return code, out + err


@pytest.fixture
def account() -> Iterator[Account]:
    with mock_aws():
        yield Account()


@pytest.fixture(autouse=True)
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where doctor runs, as `make doctor` does: a project directory with a cdk.json (the CDK's feature flags only),
    the current directory; and a home without ~/.cdk.json, so the operator's own never counts here."""
    home, directory = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    directory.mkdir()
    monkeypatch.setenv("HOME", str(home))
    write_json(directory / "cdk.json", {"app": "python app.py", "context": {"@aws-cdk/core:checkSecretUsage": True}})
    monkeypatch.chdir(directory)
    return directory


def write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value), encoding="utf-8")


def test_a_healthy_account_and_stack_pass_every_check(account: Account) -> None:
    checks = account.run()
    assert list(checks) == ["credentials", "region", "bootstrap", "concurrency", "detectfaces-quota", "stack",
                            "notifications", "async-config", "alarms"]  # fmt: skip
    assert {name: c.status for name, c in checks.items() if c.status != doctor.OK} == {}
    assert "account 123456789012" in checks["credentials"].detail
    assert "ceil(50 x 0.4 s) = 20" in checks["detectfaces-quota"].detail


def test_without_credentials_nothing_else_is_asked(account: Account) -> None:
    sts = boto3.client("sts", region_name=REGION)
    account.clients["sts"] = sts
    with Stubber(sts) as stub:
        stub.add_client_error("get_caller_identity", "InvalidClientTokenId", "The security token is invalid")
        checks = doctor.run(account.clients.__getitem__, REGION, doctor.Plan())
    (check,) = checks
    assert (check.status, check.advice) == (
        doctor.FAIL,
        "configure credentials: aws configure, aws sso login or AWS_PROFILE",
    )


def test_a_region_without_rekognition_fails(account: Account) -> None:
    check = account.run(stack=None, region="ap-east-2")["region"]
    assert check.status == doctor.FAIL and "does not offer Amazon Rekognition" in check.detail


@pytest.mark.parametrize(("version", "says"), [(None, "not CDK-bootstrapped"), ("14", "bootstrap version 14 < 21")])
def test_a_missing_or_old_bootstrap_fails(account: Account, version: str | None, says: str) -> None:
    if version is None:
        account.clients["ssm"].delete_parameter(Name=doctor.BOOTSTRAP_PARAMETER)
    else:
        account.clients["ssm"].put_parameter(Name=doctor.BOOTSTRAP_PARAMETER, Value=version, Overwrite=True)
    check = account.run(stack=None)["bootstrap"]
    assert check.status == doctor.FAIL and says in check.detail and "make bootstrap" in check.advice


def test_a_reservation_the_account_cannot_grant_fails_before_the_deploy_does(account: Account) -> None:
    account.limits = {"ConcurrentExecutions": 10, "UnreservedConcurrentExecutions": 10}
    check = account.run(stack=None)["concurrency"]
    assert check.status == doctor.FAIL and "would leave -10 (< 10)" in check.detail
    assert account.run(doctor.Plan(reserved_concurrency=None), stack=None)["concurrency"].status == doctor.OK


def test_the_quota_check_gives_the_reservation_the_tuning_rule_wants(account: Account) -> None:
    none = account.run(doctor.Plan(reserved_concurrency=None), stack=None)["detectfaces-quota"]
    assert none.status == doctor.WARN and "facepipe:reservedConcurrency=20" in none.advice
    too_many = account.run(doctor.Plan(reserved_concurrency=100), stack=None)["detectfaces-quota"]
    assert too_many.status == doctor.WARN and "throttled retries" in too_many.advice


def test_a_missing_stack_fails(account: Account) -> None:
    checks = account.run(stack="Nope")
    assert checks["stack"].status == doctor.FAIL and "notifications" not in checks


def test_notifications_that_miss_removals_fail(account: Account) -> None:
    account.notify(["s3:ObjectCreated:*"])
    check = account.run()["notifications"]
    assert check.status == doctor.FAIL and "s3:ObjectRemoved:*" in check.detail


def test_an_async_config_without_the_dlq_fails(account: Account) -> None:
    account.invoke_config = {**account.invoke_config, "DestinationConfig": {}, "MaximumRetryAttempts": 0}
    check = account.run()["async-config"]
    assert check.status == doctor.FAIL and "retries 0" in check.detail and "is not the DLQ dlq" in check.detail


def test_alarms_nobody_receives_warn_and_missing_alarms_fail(account: Account) -> None:
    sns = account.clients["sns"]
    for subscription in sns.list_subscriptions_by_topic(TopicArn=account.topic)["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
    check = account.run()["alarms"]
    assert check.status == doctor.WARN and "nobody receives them" in check.detail and "alarmEmail" in check.advice
    account.clients["cloudwatch"].delete_alarms(AlarmNames=["dlq"])
    assert account.run()["alarms"].status == doctor.FAIL


def test_the_command_prints_one_line_per_check_and_fails_on_any_fail(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checks = [
        doctor.Check("credentials", doctor.OK, "account 1"),
        doctor.Check("bootstrap", doctor.FAIL, "none", "run make bootstrap"),
    ]
    monkeypatch.setattr(doctor, "run", lambda *args, **kwargs: checks)
    assert main(["doctor"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [
        ["ok", "settings"],
        ["ok", "credentials"],
        ["fail", "bootstrap"],
    ]
    assert lines[3].strip() == "-> run make bootstrap"
    assert main(["doctor", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)[2] == {"name": "bootstrap", "status": "fail", "detail": "none",
                                                       "advice": "run make bootstrap"}  # fmt: skip


@pytest.fixture
def local_stack() -> Iterator[Any]:
    from facepipe.local.centerface import FixedDetector
    from tests.helpers import start_local

    pipeline = start_local(FixedDetector())
    try:
        yield pipeline
    finally:
        pipeline.stop()


def stack_outputs(pipeline: Any) -> dict[str, str]:
    return {contract.OUTPUT_BUCKET: pipeline.bucket, contract.OUTPUT_TABLE: pipeline.table}


def test_the_smoke_check_sends_a_photo_through_and_leaves_nothing_behind(local_stack: Any) -> None:
    check = doctor.smoke(local_stack.client, stack_outputs(local_stack), timeout=60)
    assert check.status == doctor.OK and "1 face(s) stored, then deleted" in check.detail
    listed = local_stack.client("s3").list_objects_v2(Bucket=local_stack.bucket, Prefix="facepipe-doctor/")
    assert listed.get("KeyCount", 0) == 0


def test_the_smoke_check_fails_when_no_result_comes(local_stack: Any) -> None:
    local_stack.runtime.pause()  # the function never sees the upload
    now = [0.0]
    check = doctor.smoke(
        local_stack.client, stack_outputs(local_stack), timeout=5, sleep=lambda s: now.__setitem__(0, now[0] + s),
        clock=lambda: now[0],
    )  # fmt: skip
    assert check.status == doctor.FAIL and "no result after 5 s" in check.detail and "facepipe failures" in check.advice


# ---- existing buckets (facepipe:existingBuckets), before the deploy ----------------------------------------------
THEIRS = "their-photos"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def their_bucket(account: Account, *, prefix: str = "exports/", events: str = "s3:ObjectCreated:*") -> None:
    s3, sqs = account.clients["s3"], account.clients["sqs"]
    s3.create_bucket(Bucket=THEIRS)
    arn = sqs.get_queue_attributes(
        QueueUrl=sqs.create_queue(QueueName="theirs")["QueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    rules = [{"Name": "prefix", "Value": prefix}] if prefix else []
    entry = {"Id": "their-app", "QueueArn": arn, "Events": [events]}
    s3.put_bucket_notification_configuration(
        Bucket=THEIRS,
        NotificationConfiguration={"QueueConfigurations": [{**entry, "Filter": {"Key": {"FilterRules": rules}}}
                                                           if rules else entry]},
    )  # fmt: skip


def attach_plan(**kwargs: Any) -> doctor.Plan:
    return doctor.Plan(reserved_concurrency=20, existing_buckets=(THEIRS,), **kwargs)


def test_an_existing_bucket_with_no_overlap_passes(account: Account) -> None:
    their_bucket(account)
    check = account.run(attach_plan(key_prefixes=("uploads/",)), stack=None)[f"bucket {THEIRS}"]
    assert check.status == doctor.OK
    assert "unversioned" in check.detail and "no overlap with its 1 other notification entries" in check.detail


def test_an_overlapping_consumer_fails_in_one_line_that_points_to_eventbridge(account: Account) -> None:
    their_bucket(account, prefix="")  # their app takes every created object: facepipe's entries would overlap
    check = account.run(attach_plan(key_prefixes=("uploads/",)), stack=None)[f"bucket {THEIRS}"]
    assert check.status == doctor.FAIL
    assert "theirs (s3:ObjectCreated:*; every key) overlaps facepipe's prefix 'uploads/' entry" in check.detail
    assert "\n" not in check.detail and "facepipe:notifications=eventbridge" in check.advice
    # the same bucket with EventBridge delivery: nothing to refuse
    ok = account.run(attach_plan(key_prefixes=("uploads/",), notifications=contract.Delivery.EVENTBRIDGE), None)
    assert ok[f"bucket {THEIRS}"].status == doctor.OK and "EventBridge" in ok[f"bucket {THEIRS}"].detail


def test_removal_events_elsewhere_and_facepipes_own_entries_do_not_count_as_overlap(account: Account) -> None:
    their_bucket(account, prefix="", events="s3:ObjectRestore:*")  # another event type: no overlap
    ours = {"Id": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/Facepipe/guid-1", "Events": ["s3:ObjectCreated:*"],
            "LambdaFunctionArn": FUNCTION_ARN}  # fmt: skip
    s3 = account.clients["s3"]
    config = s3.get_bucket_notification_configuration(Bucket=THEIRS)
    s3.put_bucket_notification_configuration(
        Bucket=THEIRS,
        NotificationConfiguration={"QueueConfigurations": config["QueueConfigurations"],
                                   "LambdaFunctionConfigurations": [ours]},
    )  # fmt: skip
    assert account.run(attach_plan(), stack=None)[f"bucket {THEIRS}"].status == doctor.OK
    # under another stack name the same entry is someone else's, and overlaps
    assert account.run(attach_plan(stack_name="Other"), stack=None)[f"bucket {THEIRS}"].status == doctor.FAIL


def test_a_bucket_in_another_region_or_missing_fails(account: Account) -> None:
    account.clients["s3"].create_bucket(Bucket=THEIRS, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    check = account.run(attach_plan(), stack=None)[f"bucket {THEIRS}"]
    assert check.status == doctor.FAIL and "is in eu-west-1" in check.detail and "deploy in eu-west-1" in check.advice
    missing = account.run(doctor.Plan(existing_buckets=("nobody-has-this",)), stack=None)["bucket nobody-has-this"]
    assert missing.status == doctor.FAIL and "NoSuchBucket" in missing.detail


def test_an_sse_kms_bucket_needs_its_key_granted(account: Account) -> None:
    their_bucket(account)
    account.clients["s3"].put_bucket_encryption(
        Bucket=THEIRS,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {
            "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEY_ARN}}]},
    )  # fmt: skip
    check = account.run(attach_plan(key_prefixes=("uploads/",)), stack=None)[f"bucket {THEIRS}"]
    assert check.status == doctor.FAIL and KEY_ARN in check.advice and "facepipe:kmsKeyArns" in check.advice
    granted = account.run(attach_plan(key_prefixes=("uploads/",), kms_key_arns=(KEY_ARN,)), stack=None)
    assert granted[f"bucket {THEIRS}"].status == doctor.OK and "key granted" in granted[f"bucket {THEIRS}"].detail


def test_the_deployed_check_covers_every_watched_prefix_and_eventbridge(account: Account) -> None:
    their_bucket(account)
    outputs = {contract.OUTPUT_BUCKET: THEIRS, contract.OUTPUT_FUNCTION: FUNCTION,
               contract.OUTPUT_WATCHED: f"s3://{THEIRS}/uploads/ s3://{THEIRS}/in/"}  # fmt: skip
    s3 = account.clients["s3"]
    config = s3.get_bucket_notification_configuration(Bucket=THEIRS)
    ours = [{"LambdaFunctionArn": FUNCTION_ARN, "Events": [event],
             "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}}}
            for event in EVERY_CHANGE]  # fmt: skip
    s3.put_bucket_notification_configuration(
        Bucket=THEIRS,
        NotificationConfiguration={"QueueConfigurations": config["QueueConfigurations"],
                                   "LambdaFunctionConfigurations": ours},
    )  # fmt: skip
    check = doctor.notifications(account.clients.__getitem__, outputs)
    assert check.status == doctor.FAIL and check.detail.startswith(f"s3://{THEIRS}/in/ does not notify")
    outputs[contract.OUTPUT_WATCHED] = f"s3://{THEIRS}/uploads/"
    assert doctor.notifications(account.clients.__getitem__, outputs).status == doctor.OK
    outputs[contract.OUTPUT_NOTIFICATIONS] = "eventbridge"
    check = doctor.notifications(account.clients.__getitem__, outputs)
    assert check.status == doctor.FAIL and "does not send its events to EventBridge" in check.detail


# ---- prefixes as S3 compares them, and lifecycle expirations --------------------------------------------------
# S3 keeps a filter as written and matches it against URL-encoded keys ("Configuring event notifications using object
# key name filtering": special characters "must be URL-encoded"), so it judges overlaps between the encoded forms too.


@pytest.mark.parametrize(
    ("theirs", "status"),
    [("fotos/gr%C3%B6%C3%9Fe/", doctor.FAIL),  # their app watches the same keys: S3 refuses facepipe's entries
     ("fotos/größe/", doctor.OK)],  # a raw filter is another prefix to S3 (it matches no upload there)
)  # fmt: skip
def test_an_overlap_is_judged_on_the_encoded_prefixes_as_s3_judges_it(
    account: Account, theirs: str, status: str
) -> None:
    their_bucket(account, prefix=theirs)
    check = account.run(attach_plan(key_prefixes=("fotos/größe/",)), stack=None)[f"bucket {THEIRS}"]
    assert check.status == status, check.detail
    if status == doctor.FAIL:
        assert "overlaps facepipe's prefix 'fotos/größe/' entry" in check.detail


def test_lifecycle_expirations_are_facepipes_too_and_overlap_only_their_own_type(account: Account) -> None:
    their_bucket(account, prefix="", events="s3:LifecycleExpiration:*")  # their app hears every expiry
    check = account.run(attach_plan(key_prefixes=("uploads/",)), stack=None)[f"bucket {THEIRS}"]
    assert check.status == doctor.FAIL and "s3:LifecycleExpiration:*" in check.detail
    # S3's own event types: a removal by a request is not an expiry by a lifecycle rule
    removals = s3_notifications.Subscription("theirs", ("s3:ObjectRemoved:*",))
    for expiries in (("s3:LifecycleExpiration:*",), ("s3:LifecycleExpiration:Delete",)):
        assert not s3_notifications.overlap(removals, s3_notifications.Subscription("facepipe", expiries))
    assert s3_notifications.overlap(
        s3_notifications.Subscription("a", ("s3:LifecycleExpiration:Delete",)),
        s3_notifications.Subscription("b", ("s3:LifecycleExpiration:*",)),
    )


def test_notifications_that_miss_lifecycle_expirations_fail(account: Account) -> None:
    account.notify(["s3:ObjectCreated:*", "s3:ObjectRemoved:*"])  # a deploy from before they were subscribed
    check = account.run()["notifications"]
    assert check.status == doctor.FAIL and "s3:LifecycleExpiration:*" in check.detail


def test_the_deployed_check_finds_a_special_prefix_under_its_encoded_filter(account: Account) -> None:
    s3 = account.clients["s3"]
    s3.create_bucket(Bucket=THEIRS)
    ours = [{"LambdaFunctionArn": FUNCTION_ARN, "Events": [event],
             "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "Camera+Uploads/"}]}}}
            for event in EVERY_CHANGE]  # fmt: skip
    s3.put_bucket_notification_configuration(
        Bucket=THEIRS, NotificationConfiguration={"LambdaFunctionConfigurations": ours}
    )
    outputs = {contract.OUTPUT_BUCKET: THEIRS, contract.OUTPUT_FUNCTION: FUNCTION,
               contract.OUTPUT_WATCHED: f"s3://{THEIRS}/Camera Uploads/"}  # fmt: skip
    check = doctor.notifications(account.clients.__getitem__, outputs)
    assert check.status == doctor.OK, check.detail


# ---- every check its line, whatever the account looks like ---------------------------------------------------


def answer(client: Any, operation: str, fields: dict[str, Any]) -> None:
    """Every answer to `operation` on `client` holds exactly `fields` (with its metadata), as AWS could answer."""

    def hook(parsed: dict[str, Any], **_: Any) -> None:
        metadata = parsed.get("ResponseMetadata")
        parsed.clear()
        parsed.update(fields, ResponseMetadata=metadata)

    client.meta.events.register(f"after-call.{client.meta.service_model.service_id.hyphenize()}.{operation}", hook)


def lines(output: str) -> dict[str, str]:
    """The printed check lines by check name: the status."""
    found = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in (doctor.OK, doctor.WARN, doctor.FAIL):
            found[words[1]] = words[0]
    return found


SETTINGS = {"settings": doctor.OK}  # the command's first line: what the next deploy will set
AFTER_THE_DEPLOY = {"stack": doctor.OK, "notifications": doctor.OK, "async-config": doctor.OK, "alarms": doctor.OK}
BEFORE_IT = {"credentials": doctor.OK, "region": doctor.OK, "bootstrap": doctor.OK, "concurrency": doctor.OK,
             "detectfaces-quota": doctor.OK}  # fmt: skip


def test_a_deleted_uploads_bucket_is_one_fail_line_and_every_other_check_still_runs(
    account: Account, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    account.clients["s3"].delete_bucket(Bucket=BUCKET)
    code, out = account.cli(monkeypatch, capsys)
    assert lines(out) == {**SETTINGS, **BEFORE_IT, **AFTER_THE_DEPLOY, "notifications": doctor.FAIL}
    assert "NoSuchBucket" in out and f"s3://{BUCKET} does not exist" in out and "error:" not in out
    assert code == 1


def test_a_deleted_alarm_topic_is_one_fail_line(account: Account) -> None:
    account.clients["sns"].delete_topic(TopicArn=account.topic)  # the alarms still name it
    checks = account.run()
    assert {n: c.status for n, c in checks.items()} == {**BEFORE_IT, **AFTER_THE_DEPLOY, "alarms": doctor.FAIL}
    assert "NotFound" in checks["alarms"].detail and "deleted outside the stack" in checks["alarms"].advice


def test_credentials_that_may_not_read_the_notifications_warn_and_name_the_permission(
    account: Account, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator policy grants the operator commands, not doctor's reads of the stack's configuration; an
    operator running `doctor --stack` learns which permission its checks need, and the rest still run."""
    fail_calls(account.clients["s3"], "GetBucketNotificationConfiguration", "AccessDenied", set(range(1, 10)))
    code, out = account.cli(monkeypatch, capsys)
    assert lines(out) == {**SETTINGS, **BEFORE_IT, **AFTER_THE_DEPLOY, "notifications": doctor.WARN}
    assert "AccessDenied" in out and "s3:GetBucketNotificationConfiguration" in out
    assert code == 0  # a check that could not be made is no failure of the account
    # before a deploy onto an existing bucket: the overlap cannot be judged, the bucket's other settings can
    their_bucket(account)
    check = account.run(attach_plan(key_prefixes=("uploads/",)), stack=None)[f"bucket {THEIRS}"]
    assert check.status == doctor.WARN and "unversioned" in check.detail
    assert "s3:GetBucketNotificationConfiguration" in check.advice


def test_a_bootstrap_version_that_is_no_whole_number_warns(account: Account) -> None:
    account.clients["ssm"].put_parameter(Name=doctor.BOOTSTRAP_PARAMETER, Value="30.1", Overwrite=True)
    checks = account.run()
    assert {n: c.status for n, c in checks.items()} == {**BEFORE_IT, **AFTER_THE_DEPLOY, "bootstrap": doctor.WARN}
    assert "'30.1'" in checks["bootstrap"].detail and "make bootstrap" in checks["bootstrap"].advice


@pytest.mark.parametrize(
    ("constraint", "region"),
    [("EU", "eu-west-1"),  # GetBucketLocation's legacy name for eu-west-1
     (None, "us-east-1"), ("", "us-east-1")],  # a bucket in us-east-1 has no location constraint
)  # fmt: skip
def test_a_bucket_location_is_read_as_s3_means_it(account: Account, constraint: str | None, region: str) -> None:
    their_bucket(account)
    answer(account.clients["s3"], "GetBucketLocation", {} if constraint is None else {"LocationConstraint": constraint})
    check = account.run(attach_plan(key_prefixes=("uploads/",)), stack=None, region=region)[f"bucket {THEIRS}"]
    assert check.status == doctor.OK and f"in {region}:" in check.detail, check.detail
    other = "us-west-2"
    moved = account.run(attach_plan(key_prefixes=("uploads/",)), stack=None, region=other)[f"bucket {THEIRS}"]
    assert moved.status == doctor.FAIL and f"is in {region}, the stack in {other}" in moved.detail
    assert f"deploy in {region}" in moved.advice


def test_an_unexpected_error_in_one_check_is_its_fail_line_and_the_next_checks_run(account: Account) -> None:
    from botocore.exceptions import EndpointConnectionError

    fail_calls(account.clients["ssm"], "GetParameter", EndpointConnectionError(endpoint_url="https://ssm"), {1})
    account.account_settings = {}  # an answer without AccountLimit: a KeyError inside the concurrency check
    checks = account.run()
    assert list(checks) == [*BEFORE_IT, *AFTER_THE_DEPLOY]
    assert checks["bootstrap"].status == doctor.WARN and "Could not connect" in checks["bootstrap"].detail
    assert checks["concurrency"].status == doctor.FAIL and "KeyError" in checks["concurrency"].detail
    assert "\n" not in checks["concurrency"].detail
    assert all(checks[name].status == doctor.OK for name in AFTER_THE_DEPLOY)


# ---- what the next deploy will set: cdk.json, cdk.context.json, -c, doctor's options -----------------------------


def test_doctor_checks_the_buckets_cdk_json_and_cdk_context_json_name_without_a_flag(
    account: Account, project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    their_bucket(account)  # their app takes exports/: facepipe's uploads/ entries do not overlap it
    write_json(
        project / "cdk.json", {"context": {"facepipe:existingBuckets": [THEIRS], "facepipe:detectFacesQuota": 50}}
    )
    write_json(project / "cdk.context.json", {"facepipe:keyPrefixes": '["uploads/"]'})
    code, out = account.doctor(monkeypatch, capsys)
    assert lines(out) == {**SETTINGS, **BEFORE_IT, "bucket": doctor.OK}, out
    # the reservation the stack derives from the quota (ceil(50 x 0.4 s) = 20) is the one checked
    assert f"reserves 20; watches s3://{THEIRS}/uploads/ through s3; read from cdk.json, cdk.context.json" in out
    assert "ceil(50 x 0.4 s) = 20; the stack reserves 20" in out and code == 0


def test_a_c_flag_overrides_the_files_and_a_doctor_option_overrides_the_c_flag(
    account: Account, project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    their_bucket(account)
    write_json(
        project / "cdk.json", {"context": {"facepipe:existingBuckets": [THEIRS], "facepipe:keyPrefixes": ["uploads/"]}}
    )
    # -c after --, as `make doctor CDK_ARGS=...` passes it: exports/ is their app's, and S3 would refuse the deploy
    code, out = account.doctor(monkeypatch, capsys, "--", "--profile", "ops", "-c", "facepipe:keyPrefixes=exports/")
    assert lines(out)["bucket"] == doctor.FAIL and "overlaps facepipe's prefix 'exports/' entry" in out and code == 1
    assert "read from cdk.json, -c keyPrefixes" in out
    # doctor's own option over the -c flag: EventBridge delivery coexists with their entry
    code, out = account.doctor(
        monkeypatch, capsys, "--notifications", "eventbridge", "--", "-c", "facepipe:keyPrefixes=exports/"
    )
    assert lines(out)["bucket"] == doctor.OK and "EventBridge delivery coexists" in out and code == 0
    # and a doctor option over the file: another bucket altogether
    code, out = account.doctor(monkeypatch, capsys, "--existing-bucket", "nobody-has-this")
    assert "bucket" in lines(out) and "s3://nobody-has-this" in out and THEIRS not in out


BAD_SETTINGS = [  # (file, what it holds, the key the fail line names)
    ("cdk.json", {"context": {"facepipe:reservedConcurrency": "many"}}, "facepipe:reservedConcurrency"),
    ("cdk.context.json", {"facepipe:existingBuckets": ["Not_A_Bucket"]}, "facepipe:existingBuckets"),
]


@pytest.mark.parametrize("bad", BAD_SETTINGS)
def test_a_bad_setting_is_one_fail_line_naming_its_key_and_nothing_else_is_asked(
    account: Account,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    bad: tuple[str, dict[str, Any], str],
) -> None:
    where, context, key = bad
    write_json(project / where, context)
    code, out = account.doctor(monkeypatch, capsys)
    assert code == 1 and lines(out) == {"settings": doctor.FAIL}
    (line,) = [line for line in out.splitlines() if line.startswith("fail")]
    assert key in line and "cdk.json, cdk.context.json" in out  # the advice says where settings come from


def test_a_bad_flag_is_named_too_and_an_option_can_replace_a_bad_file_value(
    account: Account, project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = account.doctor(monkeypatch, capsys, "-c", "facepipe:notifications=carrier-pigeon")
    assert code == 1 and lines(out) == {"settings": doctor.FAIL} and "facepipe:notifications" in out
    code, out = account.doctor(monkeypatch, capsys, "--", "-c", "facepipe:memoryMb")  # not key=value
    assert code == 1 and lines(out) == {"settings": doctor.FAIL} and "facepipe:memoryMb" in out
    write_json(project / "cdk.json", {"context": {"facepipe:reservedConcurrency": "many"}})
    code, out = account.doctor(monkeypatch, capsys, "--reserved-concurrency", "20")
    assert code == 0 and lines(out) == {**SETTINGS, **BEFORE_IT}, out


def test_without_a_cdk_json_doctor_warns_that_it_checks_the_defaults(
    account: Account, project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "cdk.json").unlink()
    code, out = account.doctor(monkeypatch, capsys, "--reserved-concurrency", "20")
    assert lines(out)["settings"] == doctor.WARN and "no cdk.json in" in out and "--project-dir" in out
    assert code == 0  # a warning is no failure
    # --project-dir names the project wherever doctor runs
    elsewhere = project.parent / "elsewhere"
    elsewhere.mkdir()
    write_json(elsewhere / "cdk.json", {"context": {"facepipe:reservedConcurrency": 20}})
    code, out = account.doctor(monkeypatch, capsys, "--project-dir", str(elsewhere))
    assert lines(out) == {**SETTINGS, **BEFORE_IT} and "reserves 20" in out


def test_the_user_defaults_count_under_the_project_as_for_cdk(
    account: Account, project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = Path.home()
    write_json(home / ".cdk.json", {"context": {"facepipe:reservedConcurrency": 5, "facepipe:stackName": "Mine"}})
    write_json(project / "cdk.json", {"context": {"facepipe:reservedConcurrency": 20}})
    code, out = account.doctor(monkeypatch, capsys)
    assert "stack Mine: reserves 20;" in out and "~/.cdk.json" in out and code == 0


def test_the_context_flags_are_read_from_cdk_arguments_as_the_cdk_cli_reads_them() -> None:
    cdk_args = ["--profile", "ops", "-c", "facepipe:a=1", "--require-approval", "never",
                "--context", 'facepipe:b=["x"]', "--context=facepipe:c=2", "-cfacepipe:d=3", "Facepipe"]  # fmt: skip
    assert cdk_context_flags(cdk_args) == ["facepipe:a=1", 'facepipe:b=["x"]', "facepipe:c=2", "facepipe:d=3"]
    assert cdk_context_flags([]) == []
