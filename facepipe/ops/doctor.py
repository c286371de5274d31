"""doctor: is this account, region and stack ready for facepipe? One line per check, ok / warn / fail, with advice.

Before a deploy: credentials, the region (Rekognition offered), CDK bootstrap, Lambda concurrency against the
reservation the stack will make, the DetectFaces quota against the tuning rule, and each existing bucket the stack
will attach to (its region, encryption key, and whether S3 would refuse facepipe's notification entries next to
the ones other consumers have). After it (`--stack`): the
outputs, the bucket's notifications to the function, the function's async config, the alarms and whether
anyone receives them, and (`--smoke`) one sample photo through the pipeline. Every check takes its boto3
clients from `client_for`, so tests drive it with moto and Stubbers. docs/DEPLOY.md explains each failure
and its fix.

Whatever the account answers, every check gives its line: a check turns the answers it can meet (a deleted
resource, a permission these credentials lack, a malformed value) into a fail or warn line with advice, and
`run` turns anything else a check raises into that check's fail line naming the error, then runs the next
checks. `run` never raises.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from detect_faces.contract import (
    ASYNC_MAX_EVENT_AGE_SECONDS,
    ASYNC_RETRY_ATTEMPTS,
    OUTPUT_ALARM_TOPIC,
    OUTPUT_BUCKET,
    OUTPUT_DLQ_URL,
    OUTPUT_FUNCTION,
    OUTPUT_NOTIFICATIONS,
    OUTPUT_TABLE,
    OUTPUT_WATCHED,
    Delivery,
)
from detect_faces.subscriptions import NOTIFICATION_EVENTS, notification_form, split_locations
from facepipe.common import notifications as s3_notifications
from facepipe.common.clients import ClientFor
from infra.settings import (
    DEFAULT_STACK_NAME,
    PREFIX,
    PROJECT_CONFIG,
    PROJECT_CONTEXT,
    USER_DEFAULTS,
    ContextError,
    FacepipeSettings,
    parse_flags,
    read_settings,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ServerSideEncryptionRuleOutputTypeDef

OK, WARN, FAIL = "ok", "warn", "fail"
BOOTSTRAP_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
MIN_BOOTSTRAP_VERSION = 21  # what aws-cdk-lib 2.2xx templates require
MIN_UNRESERVED = 10  # Lambda refuses a reservation that leaves less unreserved concurrency
# The tuning rule: reserved concurrency = ceil(quota x D) (docs/OPERATIONS.md), D as the stack assumes it.
EXPECTED_DURATION_SECONDS = FacepipeSettings.expected_duration_seconds
# A reservation past this many times the rule's only adds throttled retries.
OVER_RESERVED = 2
# The error codes AWS answers a call these credentials may not make with (S3, most JSON APIs, SNS, EC2-style).
DENIED = frozenset({"AccessDenied", "AccessDeniedException", "AuthorizationError", "UnauthorizedOperation"})
# GetBucketLocation: "Buckets in Region us-east-1 have a LocationConstraint of null. Buckets with a
# LocationConstraint of EU reside in eu-west-1." (S3 API reference)
LEGACY_LOCATIONS = {"EU": "eu-west-1"}
# What doctor's checks of a deployed stack read, beyond the operator commands' own permissions (the operator policy,
# infra/operators.py, grants those commands only: these checks are for the credentials that deploy).
NEEDS_TO_READ_THE_NOTIFICATIONS = "s3:GetBucketNotificationConfiguration"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    advice: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class _Verdict(Exception):  # not an error: a check's line, found before the check's end
    """Raised by a step of a check that has decided the check's line; the check returns it."""

    def __init__(self, check: Check) -> None:
        super().__init__(check.detail)
        self.check = check


@dataclass(frozen=True)
class Plan:
    """What the stack will set, as `make deploy` would (CDK context): `Plan.from_settings(read_settings(...))`."""

    reserved_concurrency: int | None = None
    retry_attempts: int = ASYNC_RETRY_ATTEMPTS
    max_event_age_seconds: int = ASYNC_MAX_EVENT_AGE_SECONDS
    existing_buckets: tuple[str, ...] = ()
    key_prefixes: tuple[str, ...] = ()
    notifications: Delivery = Delivery.S3
    kms_key_arns: tuple[str, ...] = ()
    stack_name: str = DEFAULT_STACK_NAME  # whose entries in a bucket's notification configuration are facepipe's own

    @classmethod
    def from_settings(cls, settings: FacepipeSettings) -> Plan:
        """What the stack sets with these settings: the reservation is the one it makes (explicit, or from the
        DetectFaces quota by the tuning rule)."""
        return cls(
            reserved_concurrency=settings.function_concurrency,
            retry_attempts=settings.retry_attempts,
            max_event_age_seconds=settings.max_event_age_seconds,
            existing_buckets=settings.existing_buckets,
            key_prefixes=settings.key_prefixes,
            notifications=settings.notifications,
            kms_key_arns=settings.kms_key_arns,
            stack_name=settings.stack_name,
        )

    def wanted(self, function: str = "detect_faces") -> list[s3_notifications.Subscription]:
        """The entries the stack adds to each bucket (S3 delivery), their prefix in the URL-encoded form S3 keeps
        and compares (infra/delivery.py writes the same)."""
        return [
            s3_notifications.Subscription(function, (event,), notification_form(prefix))
            for prefix in (self.key_prefixes or ("",))
            for event in NOTIFICATION_EVENTS
        ]


# ---- what the next deploy will set ----------------------------------------------------------------------------
def settings(
    project_dir: Path, flags: Sequence[str] = (), *, user_defaults: Path | None = USER_DEFAULTS
) -> tuple[Check, Plan | None]:
    """The `settings` line and the Plan the other checks judge: the `facepipe:` settings `cdk deploy -c FLAG ...`
    run from `project_dir` would use (its cdk.json, cdk.context.json, ~/.cdk.json; `flags` over them, a later flag
    for the same key winning). A setting the stack would refuse is one fail line naming it, and no Plan."""
    try:
        found = read_settings(project_dir, flags, user_defaults=user_defaults)
    except ContextError as exc:
        return Check(
            "settings", FAIL, _one_line(str(exc)),
            "fix it where it is set (cdk.json, cdk.context.json, ~/.cdk.json, or a -c flag; docs/CONFIGURATION.md),"
            " then run doctor again: make deploy would stop on it",
        ), None  # fmt: skip
    plan = Plan.from_settings(found)
    read = [name for name in (PROJECT_CONFIG, PROJECT_CONTEXT) if (project_dir / name).is_file()]
    if user_defaults is not None and user_defaults.expanduser().is_file():
        read.append(str(user_defaults))
    given = sorted({key.removeprefix(PREFIX) for key in parse_flags(flags) if key.startswith(PREFIX)})
    sources = ", ".join([*read, *([f"-c {', '.join(given)}"] if given else [])]) or "no file or flag (the defaults)"
    detail = f"{_describe(plan)}; read from {sources}"
    if PROJECT_CONFIG not in read:
        return Check(
            "settings", WARN, detail,
            f"no {PROJECT_CONFIG} in {project_dir.resolve()}: run doctor from the project's directory (make doctor),"
            " or name it with --project-dir, to check what its context sets",
        ), plan  # fmt: skip
    return Check("settings", OK, detail), plan


def _describe(plan: Plan) -> str:
    """The settings the checks depend on, in a few words."""
    reserves = "no reservation" if plan.reserved_concurrency is None else f"reserves {plan.reserved_concurrency}"
    watched = (
        ", ".join(f"s3://{b}/{p}" for b in plan.existing_buckets for p in (plan.key_prefixes or ("",)))
        if plan.existing_buckets
        else "its own bucket"
    )
    return f"stack {plan.stack_name}: {reserves}; watches {watched} through {plan.notifications.value}"


# ---- the checks ---------------------------------------------------------------------------------------------------
def run(
    client_for: ClientFor,
    region: str | None,
    plan: Plan,
    stack: str | None = None,
    with_smoke: bool = False,
) -> list[Check]:
    """Every check, in order, one line each. Only missing credentials stop the run (nothing else can be asked);
    a stack without its outputs skips the checks that need them."""
    checks = [_guarded("credentials", credentials, client_for, region)]
    if checks[0].status == FAIL:
        return checks  # nothing else can be asked without credentials
    checks += [
        _guarded("region", rekognition_region, region),
        _guarded("bootstrap", bootstrap, client_for),
        _guarded("concurrency", concurrency, client_for, plan),
        _guarded("detectfaces-quota", detect_faces_quota, client_for, plan),
    ]
    checks += [
        _guarded(f"bucket {bucket}", existing_bucket, client_for, region, plan, bucket)
        for bucket in plan.existing_buckets
    ]
    if stack:
        try:
            outputs_check, outputs = stack_outputs(client_for, stack)
        except Exception as exc:  # noqa: BLE001 - any answer becomes this check's line
            outputs_check, outputs = _unexpected("stack", exc), {}
        checks.append(outputs_check)
        if outputs_check.status != FAIL:
            checks += [
                _guarded("notifications", notifications, client_for, outputs),
                _guarded("async-config", async_config, client_for, outputs, plan),
                _guarded("alarms", alarms, client_for, outputs),
            ]
            if with_smoke:
                checks.append(_guarded("smoke", smoke, client_for, outputs))
    return checks


def _guarded(name: str, check: Callable[..., Check], *args: Any) -> Check:
    """The check's own line, or, when it raises, a fail line for it naming the error: the run goes on."""
    try:
        return check(*args)
    except Exception as exc:  # noqa: BLE001 - any answer becomes this check's line
        return _unexpected(name, exc)


def _unexpected(name: str, exc: Exception) -> Check:
    return Check(
        name, FAIL, f"this check stopped on {type(exc).__name__}: {_one_line(_error(exc))}",
        "fix what the error names and run doctor again; the other checks did not depend on this one",
    )  # fmt: skip


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _code(exc: Exception) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""


def _error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return _one_line(f"{error.get('Code')}: {error.get('Message', '')}")
    return _one_line(str(exc))


def _cannot_read(name: str, what: str, exc: Exception, action: str) -> Check:
    """A warn line for a reading these credentials may not make (or could not make): nothing is known to be wrong."""
    if _code(exc) in DENIED:
        return Check(
            name, WARN, f"cannot read {what}: {_error(exc)}",
            f"these credentials lack {action}; doctor needs it for this check (the operator policy grants the"
            " operator commands only: run doctor with the credentials that deploy)",
        )  # fmt: skip
    return Check(
        name, WARN, f"cannot read {what}: {_error(exc)}", "run doctor again; if it persists, check the network"
    )


def bucket_region(constraint: str | None) -> str:
    """The region GetBucketLocation's LocationConstraint names: none is us-east-1, the legacy "EU" eu-west-1."""
    return LEGACY_LOCATIONS.get(constraint, constraint) if constraint else "us-east-1"


def credentials(client_for: ClientFor, region: str | None) -> Check:
    try:
        identity = client_for("sts").get_caller_identity()
    except (ClientError, BotoCoreError) as exc:
        return Check(
            "credentials", FAIL, _error(exc), "configure credentials: aws configure, aws sso login or AWS_PROFILE"
        )
    where = f"account {identity['Account']} as {identity['Arn']}"
    if not region:
        return Check("credentials", FAIL, f"{where}; no region", "set AWS_REGION (the bucket and Rekognition's region)")
    return Check("credentials", OK, f"{where}, region {region}")


def rekognition_region(region: str | None) -> Check:
    import botocore.session

    offered = botocore.session.get_session().get_available_regions("rekognition")
    if region in offered:
        return Check("region", OK, f"{region} offers Amazon Rekognition (it reads S3 objects in its own region)")
    return Check(
        "region", FAIL, f"{region} does not offer Amazon Rekognition", f"deploy in one that does, e.g. {offered[0]}"
    )


def bootstrap(client_for: ClientFor) -> Check:
    try:
        value = str(client_for("ssm").get_parameter(Name=BOOTSTRAP_PARAMETER)["Parameter"]["Value"]).strip()
    except ClientError as exc:
        if _code(exc) == "ParameterNotFound":
            return Check("bootstrap", FAIL, "this account/region is not CDK-bootstrapped", "run make bootstrap")
        return _cannot_read("bootstrap", BOOTSTRAP_PARAMETER, exc, "ssm:GetParameter on it")
    except BotoCoreError as exc:
        return _cannot_read("bootstrap", BOOTSTRAP_PARAMETER, exc, "ssm:GetParameter on it")
    if not re.fullmatch(r"\d+", value):  # CDK writes a whole number; anything else was written by hand
        return Check(
            "bootstrap", WARN, f"{BOOTSTRAP_PARAMETER} holds {value!r}, not a bootstrap version (a whole number)",
            "run make bootstrap: it writes the parameter again",
        )  # fmt: skip
    if int(value) < MIN_BOOTSTRAP_VERSION:
        return Check(
            "bootstrap", FAIL, f"bootstrap version {value} < {MIN_BOOTSTRAP_VERSION}", "run make bootstrap to update it"
        )
    return Check("bootstrap", OK, f"CDK bootstrap version {value}")


def concurrency(client_for: ClientFor, plan: Plan) -> Check:
    try:
        limits = client_for("lambda").get_account_settings()["AccountLimit"]
    except (ClientError, BotoCoreError) as exc:
        return _cannot_read("concurrency", "the account's Lambda limits", exc, "lambda:GetAccountSettings")
    total, unreserved = limits["ConcurrentExecutions"], limits["UnreservedConcurrentExecutions"]
    detail = f"account limit {total}, unreserved {unreserved}"
    if plan.reserved_concurrency is None:
        return Check("concurrency", OK, f"{detail}; the stack reserves none")
    left = unreserved - plan.reserved_concurrency
    if left < MIN_UNRESERVED:
        return Check(
            "concurrency",
            FAIL,
            f"{detail}; reserving {plan.reserved_concurrency} would leave {left} (< {MIN_UNRESERVED}):"
            " Lambda refuses it",
            "deploy without facepipe:reservedConcurrency, or ask for a higher limit in Service Quotas",
        )
    return Check("concurrency", OK, f"{detail}; reserving {plan.reserved_concurrency} leaves {left}")


def detect_faces_quota(client_for: ClientFor, plan: Plan) -> Check:
    try:
        paginator = client_for("service-quotas").get_paginator("list_service_quotas")
        quotas = [q for page in paginator.paginate(ServiceCode="rekognition") for q in page.get("Quotas", [])]
    except (ClientError, BotoCoreError) as exc:
        return _cannot_read("detectfaces-quota", "Service Quotas", exc, "servicequotas:ListServiceQuotas")
    found = [q for q in quotas if "DetectFaces" in q.get("QuotaName", "")]
    if not found:
        return Check("detectfaces-quota", WARN, "no DetectFaces quota listed for this region", "see Service Quotas")
    tps = float(found[0]["Value"])
    rule = math.ceil(tps * EXPECTED_DURATION_SECONDS)
    detail = f"DetectFaces quota {tps:g} TPS; the tuning rule reserves ceil({tps:g} x 0.4 s) = {rule}"
    if plan.reserved_concurrency is None:
        return Check(
            "detectfaces-quota", WARN, f"{detail}; the stack reserves none",
            f"once the account has headroom: make deploy CDK_ARGS='-c facepipe:reservedConcurrency={rule}'",
        )  # fmt: skip
    if plan.reserved_concurrency > OVER_RESERVED * rule:
        return Check(
            "detectfaces-quota", WARN, f"{detail}; the stack reserves {plan.reserved_concurrency}",
            "more concurrency than the quota serves only adds throttled retries (docs/OPERATIONS.md)",
        )  # fmt: skip
    return Check("detectfaces-quota", OK, f"{detail}; the stack reserves {plan.reserved_concurrency}")


def existing_bucket(client_for: ClientFor, region: str | None, plan: Plan, bucket: str) -> Check:
    """What would make `cdk deploy` fail on, or the function fail after attaching to, a bucket that exists: its
    region, whether the function may decrypt its objects, and other consumers' notification entries."""
    name, s3 = f"bucket {bucket}", client_for("s3")
    try:
        location = _bucket_location(s3, name, bucket, region)
        notes = [_versioning(s3, name, bucket), *_encryption(s3, name, bucket, plan)]
        return _beside_other_consumers(s3, name, bucket, plan, where=f"s3://{bucket} in {location}", notes=notes)
    except _Verdict as verdict:
        return verdict.check


def _bucket_location(s3: S3Client, name: str, bucket: str, region: str | None) -> str:
    """The bucket's region, which must be the stack's: Rekognition reads S3 objects only in its own region."""
    try:
        location = bucket_region(s3.get_bucket_location(Bucket=bucket).get("LocationConstraint"))
    except ClientError as exc:
        raise _Verdict(
            Check(name, FAIL, f"s3://{bucket}: {_error(exc)}", "check the name and that these credentials can see it")
        ) from None
    if region and location != region:
        raise _Verdict(Check(
            name, FAIL, f"s3://{bucket} is in {location}, the stack in {region}",
            f"deploy in {location}: Rekognition reads S3 objects only in its own region",
        ))  # fmt: skip
    return location


def _versioning(s3: S3Client, name: str, bucket: str) -> str:
    try:
        return s3.get_bucket_versioning(Bucket=bucket).get("Status", "unversioned").lower()
    except ClientError as exc:
        raise _Verdict(
            Check(name, FAIL, f"s3://{bucket}: {_error(exc)}", "these credentials must read the bucket's settings")
        ) from None


def _encryption(s3: S3Client, name: str, bucket: str, plan: Plan) -> list[str]:
    """Notes on the bucket's default encryption; a fail verdict for a KMS key the function may not use."""
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError as exc:
        if _code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
            return []
        return [f"its encryption unread ({_code(exc)})"]
    return [note for rule in rules if (note := _kms_note(name, bucket, rule, plan))]


def _kms_note(name: str, bucket: str, rule: ServerSideEncryptionRuleOutputTypeDef, plan: Plan) -> str | None:
    default = rule.get("ApplyServerSideEncryptionByDefault", {})
    if not default.get("SSEAlgorithm", "").startswith("aws:kms"):
        return None
    key = default.get("KMSMasterKeyID", "")
    if not key or key.startswith("alias/aws/"):
        return "SSE-KMS with the AWS-managed key"
    if any(key == arn or arn.endswith(f"/{key}") for arn in plan.kms_key_arns):
        return "SSE-KMS, key granted"
    arn = key if key.startswith("arn:") and ":key/" in key else f"<the ARN of key {key}>"
    raise _Verdict(Check(
        name, FAIL, f"s3://{bucket} encrypts with KMS key {key}, which the function may not use",
        f"deploy with -c facepipe:kmsKeyArns='[\"{arn}\"]' (a key ARN, arn:aws:kms:REGION:ACCOUNT:key/ID,"
        " not an alias; its key policy must allow the account's IAM policies)",
    ))  # fmt: skip


def _beside_other_consumers(s3: S3Client, name: str, bucket: str, plan: Plan, *, where: str, notes: list[str]) -> Check:
    """Whether S3 would refuse facepipe's notification entries next to other consumers' (S3 delivery only)."""
    try:
        existing = s3.get_bucket_notification_configuration(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) in DENIED:  # the deploy reads and writes it with CDK's handler role, not with these
            return Check(
                name, WARN, f"{where}: {', '.join(notes)}; its notification entries unread: {_error(exc)}",
                f"with {NEEDS_TO_READ_THE_NOTIFICATIONS}, doctor tells whether S3 would refuse facepipe's entries next"
                " to other consumers' (or deploy with -c facepipe:notifications=eventbridge, which coexists with all)",
            )  # fmt: skip
        return Check(name, FAIL, f"s3://{bucket}: {_error(exc)}", "the deploy reads and writes its notifications")
    others = [e for e in s3_notifications.subscriptions(existing) if not s3_notifications.ours(e, plan.stack_name)]
    if plan.notifications == Delivery.EVENTBRIDGE:
        notes.append(f"EventBridge delivery coexists with its {len(others)} other notification entries")
        return Check(name, OK, f"{where}: {', '.join(notes)}")
    clashes = s3_notifications.conflicts(existing, plan.wanted(), plan.stack_name)
    if clashes:
        other, want = clashes[0]
        prefix = unquote_plus(want.prefix)  # as the operator wrote it in facepipe:keyPrefixes
        return Check(
            name, FAIL,
            f"s3://{bucket}: {other.describe()} overlaps facepipe's "
            f"{'prefix ' + repr(prefix) if prefix else 'every-key'} entry ({want.events[0]});"
            " S3 will refuse the deploy",
            "deploy with -c facepipe:notifications=eventbridge (it coexists with every other consumer)",
        )  # fmt: skip
    notes.append(f"no overlap with its {len(others)} other notification entries")
    return Check(name, OK, f"{where}: {', '.join(notes)}")


def stack_outputs(client_for: ClientFor, stack: str) -> tuple[Check, dict[str, str]]:
    try:
        found = client_for("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as exc:
        return Check("stack", FAIL, f"stack {stack}: {_error(exc)}", "deploy it: make deploy"), {}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
    needed = (OUTPUT_BUCKET, OUTPUT_TABLE, OUTPUT_DLQ_URL, OUTPUT_FUNCTION, OUTPUT_ALARM_TOPIC)
    missing = [name for name in needed if name not in outputs]
    if missing:
        return Check("stack", FAIL, f"stack {stack} has no output {', '.join(missing)}", "is it a facepipe stack?"), {}
    return Check("stack", OK, f"stack {stack} ({found['StackStatus']}) with its outputs"), outputs


def notifications(client_for: ClientFor, outputs: dict[str, str]) -> Check:
    """Each watched bucket still delivers to the function: its notification entries, or EventBridge on."""
    function = outputs[OUTPUT_FUNCTION]
    locations = split_locations(outputs.get(OUTPUT_WATCHED, f"s3://{outputs[OUTPUT_BUCKET]}/"))
    eventbridge = outputs.get(OUTPUT_NOTIFICATIONS) == Delivery.EVENTBRIDGE
    advice = "deploy again (make deploy); another tool may have replaced the bucket's notification configuration"
    s3 = client_for("s3")
    # Mappings, not the stubs' TypedDict: it declares EventBridgeConfiguration always there, S3 leaves it out when off
    configs: dict[str, Mapping[str, Any]] = {}
    for location in locations:
        bucket, _, prefix = location[len("s3://") :].partition("/")
        if bucket not in configs:
            try:
                configs[bucket] = s3.get_bucket_notification_configuration(Bucket=bucket)
            except ClientError as exc:
                if _code(exc) == "NoSuchBucket":
                    return Check(
                        "notifications", FAIL,
                        f"s3://{bucket} does not exist ({_error(exc)}): nothing reaches {function}",
                        "the bucket was deleted outside the stack; create it again under this name, then make deploy"
                        " (CloudFormation does not recreate what was deleted behind its back)",
                    )  # fmt: skip
                if _code(exc) in DENIED:
                    return _cannot_read(
                        "notifications", f"the notification configuration of s3://{bucket}", exc,
                        f"{NEEDS_TO_READ_THE_NOTIFICATIONS} on the bucket",
                    )  # fmt: skip
                raise
        config = configs[bucket]
        if eventbridge:
            if "EventBridgeConfiguration" not in config:
                return Check("notifications", FAIL, f"s3://{bucket} does not send its events to EventBridge", advice)
            continue
        events = {  # S3 keeps the filter in the URL-encoded form the stack wrote (notification_form)
            event
            for entry in s3_notifications.subscriptions(config)
            if entry.target.split(":")[6:7] == [function] and entry.prefix == notification_form(prefix)
            for event in entry.events
        }
        missing = [e for e in NOTIFICATION_EVENTS if e not in events]
        if missing:
            return Check(
                "notifications", FAIL, f"{location} does not notify {function} of {', '.join(missing)}", advice
            )
    how = (
        "sends its events to EventBridge"
        if eventbridge
        else f"notifies {function} of created, removed and expired objects"
    )
    return Check("notifications", OK, f"{' '.join(locations)} {how}")


def async_config(client_for: ClientFor, outputs: dict[str, str], plan: Plan) -> Check:
    function = outputs[OUTPUT_FUNCTION]
    try:
        config = client_for("lambda").get_function_event_invoke_config(FunctionName=function)
    except ClientError as exc:
        if _code(exc) in DENIED:
            return _cannot_read(
                "async-config", f"{function}'s async config", exc, "lambda:GetFunctionEventInvokeConfig on it"
            )
        return Check("async-config", FAIL, f"{function}: {_error(exc)}", "deploy again: make deploy")
    destination = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination", "")
    queue = outputs[OUTPUT_DLQ_URL].rstrip("/").rsplit("/", 1)[-1]
    problems = []
    if config.get("MaximumRetryAttempts") != plan.retry_attempts:
        problems.append(f"retries {config.get('MaximumRetryAttempts')} (expected {plan.retry_attempts})")
    if config.get("MaximumEventAgeInSeconds") != plan.max_event_age_seconds:
        problems.append(f"max event age {config.get('MaximumEventAgeInSeconds')} s")
    if not destination.endswith(f":{queue}"):
        problems.append(f"on-failure destination {destination or 'none'} is not the DLQ {queue}")
    if problems:
        return Check("async-config", FAIL, f"{function}: {'; '.join(problems)}", "deploy again: make deploy")
    return Check(
        "async-config",
        OK,
        f"{plan.retry_attempts} retries, max age {plan.max_event_age_seconds} s, failures to {queue}",
    )


def alarms(client_for: ClientFor, outputs: dict[str, str]) -> Check:
    topic = outputs[OUTPUT_ALARM_TOPIC]
    try:
        found = [
            a
            for page in client_for("cloudwatch").get_paginator("describe_alarms").paginate()
            for a in page.get("MetricAlarms", [])
            if topic in a.get("AlarmActions", [])
        ]
    except ClientError as exc:
        if _code(exc) in DENIED:
            return _cannot_read("alarms", "the account's alarms", exc, "cloudwatch:DescribeAlarms")
        raise
    if not found:
        return Check("alarms", FAIL, f"no alarm notifies {topic}", "deploy again: make deploy")
    try:
        subscriptions = client_for("sns").list_subscriptions_by_topic(TopicArn=topic).get("Subscriptions", [])
    except ClientError as exc:
        if _code(exc) == "NotFound":
            return Check(
                "alarms", FAIL, f"{len(found)} alarms notify {topic}, which does not exist ({_error(exc)}): nobody"
                " hears them",
                "the topic was deleted outside the stack, and make deploy does not notice: create it again under"
                " this name (and subscribe to it), or delete the stack and deploy it anew",
            )  # fmt: skip
        if _code(exc) in DENIED:
            return _cannot_read("alarms", f"the subscriptions of {topic}", exc, "sns:ListSubscriptionsByTopic on it")
        raise
    confirmed = [s for s in subscriptions if s["SubscriptionArn"].startswith("arn:")]
    if not confirmed:
        pending = len(subscriptions) - len(confirmed)
        return Check(
            "alarms", WARN,
            f"{len(found)} alarms notify the topic, but nobody receives them"
            + (f" ({pending} subscription(s) pending confirmation)" if pending else ""),
            "deploy with -c facepipe:alarmEmail=you@example.com and confirm the e-mail AWS sends",
        )  # fmt: skip
    return Check("alarms", OK, f"{len(found)} alarms, {len(confirmed)} confirmed subscription(s)")


def smoke(
    client_for: ClientFor,
    outputs: dict[str, str],
    timeout: float = 90.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Check:
    """One bundled sample photo through the deployed pipeline: uploaded, its result read back, then deleted."""
    from detect_faces.results import ResultsStore
    from facepipe.common.photos import photo

    bucket = outputs[OUTPUT_BUCKET]
    key = f"facepipe-doctor/smoke-{uuid.uuid4().hex[:12]}.jpg"
    s3 = client_for("s3")
    store = ResultsStore(client_for("dynamodb"), outputs[OUTPUT_TABLE])
    s3.put_object(Bucket=bucket, Key=key, Body=photo("astronaut.jpg"))
    try:
        deadline = clock() + timeout
        while True:
            result = store.get(bucket, key)
            if result is not None and result.status not in ("PROCESSING", "RETRYING"):
                break
            if clock() >= deadline:
                seen = result.status if result else "no result"
                return Check(
                    "smoke", FAIL, f"s3://{bucket}/{key}: {seen} after {timeout:.0f} s",
                    "look at the function's logs and errors alarm, and `facepipe failures` for the DLQ",
                )  # fmt: skip
            sleep(1.0)
    finally:
        s3.delete_object(Bucket=bucket, Key=key)  # its results follow the object (ObjectRemoved)
    if result.status != "DETECTED" or not result.face_count:
        return Check("smoke", FAIL, f"s3://{bucket}/{key}: {result.status} ({result.reason or 'no face'})")
    return Check("smoke", OK, f"a sample photo went through: {result.face_count} face(s) stored, then deleted")
