"""Stack settings from CDK context (`-c facepipe:key=value`, or a "context" entry in cdk.json), validated in one
place. The defaults are this dataclass's fields (the function's own come from detect_faces.settings.Settings):
cdk.json holds only CDK's feature flags, so no default is written twice."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from constructs import Construct

from detect_faces.contract import ASYNC_MAX_EVENT_AGE_SECONDS, ASYNC_RETRY_ATTEMPTS, Delivery
from detect_faces.settings import Settings
from detect_faces.subscriptions import UNSETTLED_IN_FILTERS

PREFIX = "facepipe:"
POWERTOOLS_VERSION = "3.37.0"
LAYER_DIR = "build/powertools-layer"
LAMBDA_CODE_DIR = "lambdas"
HANDLER = "detect_faces.handler.lambda_handler"


# The retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)  # fmt: skip


# S3's bucket naming rules (general purpose buckets): 3-63 characters, lower case, digits, dots and hyphens.
BUCKET_NAME = re.compile(r"(?!xn--)(?!sthree-)(?!.*\.\.)(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# What IAM reads specially in a resource: the wildcards, and the start of a policy variable.
IAM_SPECIALS = ("*", "?", "${")
KMS_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")


class ContextError(ValueError):
    pass


def overlapping(prefixes: tuple[str, ...]) -> tuple[str, str] | None:
    """Two prefixes of which one starts with the other: S3 refuses such notification configurations (for the
    same event types on one bucket), and the shorter one covers the longer anyway."""
    for shorter in prefixes:
        for longer in prefixes:
            if shorter != longer and longer.startswith(shorter):
                return shorter, longer
    return None


def refuse_unsettled_filters(prefixes: tuple[str, ...]) -> None:
    """Refuse, for S3 delivery, a prefix whose notification filter S3 might never match: one holding a character
    that the S3 user guide writes raw in a filter while the keys S3 matches it against are form-encoded
    (detect_faces.subscriptions.UNSETTLED_IN_FILTERS). EventBridge's rule matches keys as they are."""
    for prefix in prefixes:
        for character in UNSETTLED_IN_FILTERS:
            if character in prefix:
                raise ContextError(
                    f"context {PREFIX}keyPrefixes: {prefix!r} has {character!r}, and S3 does not document how a"
                    " notification filter holding it matches the URL-encoded keys of its events: uploads under it"
                    f" might never arrive. Deploy with -c {PREFIX}notifications=eventbridge (its rule matches keys"
                    " as they are), or use a prefix without it"
                )


@dataclass(frozen=True)
class FacepipeConfig:
    face_attributes: str = Settings.face_attributes
    # None: no reservation. A new account may have a concurrency limit of 10, and Lambda refuses any
    # reservation that leaves less than 10 unreserved; set it (see README) once the account has headroom.
    reserved_concurrency: int | None = None
    # The account's DetectFaces quota (TPS). When set, and reservedConcurrency is not, the stack reserves
    # ceil(quota x expected duration): the rule docs/BENCHMARKS.md measured.
    detect_faces_quota: float | None = None
    expected_duration_seconds: float = 0.4
    retry_attempts: int = ASYNC_RETRY_ATTEMPTS
    max_event_age_seconds: int = ASYNC_MAX_EVENT_AGE_SECONDS
    log_retention_days: int = 30
    removal_policy: str = "retain"
    alarm_email: str | None = None
    memory_mb: int = 256
    timeout_seconds: int = 60
    detect_max_attempts: int = Settings.detect_max_attempts
    # Attach to buckets that already exist (empty: the stack creates its own uploads bucket).
    existing_buckets: tuple[str, ...] = ()
    key_prefixes: tuple[str, ...] = ()  # empty: every key
    notifications: Delivery = Delivery.S3
    kms_key_arns: tuple[str, ...] = ()  # SSE-KMS keys of the buckets: kms:Decrypt, granted only when given
    # The backlog function's reserved concurrency (None: no reservation; docs/OPERATIONS.md sizes it).
    backlog_concurrency: int | None = None

    @classmethod
    def from_context(cls, scope: Construct) -> FacepipeConfig:
        def get(name: str, default: Any) -> Any:
            value = scope.node.try_get_context(PREFIX + name)
            return default if value is None or value == "" else value

        def integer(name: str, default: int | None, lo: int, hi: int) -> int | None:
            raw = get(name, default)
            if raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null", "unreserved")):
                return None
            try:
                value = int(raw)
            except (TypeError, ValueError):
                raise ContextError(f"context {PREFIX}{name} must be an integer, got {raw!r}") from None
            if not lo <= value <= hi:
                raise ContextError(f"context {PREFIX}{name} must be between {lo} and {hi}, got {value}")
            return value

        def required_int(name: str, default: int, lo: int, hi: int) -> int:
            value = integer(name, default, lo, hi)
            if value is None:
                raise ContextError(f"context {PREFIX}{name} is required")
            return value

        def strings(name: str) -> tuple[str, ...]:
            """A list: a JSON list in cdk.json or on the command line (-c key='["a","b"]'), or comma-separated."""
            raw = get(name, [])
            if isinstance(raw, str):
                text = raw.strip()
                if text.startswith("["):
                    try:
                        raw = json.loads(text)
                    except ValueError:
                        raise ContextError(f"context {PREFIX}{name} is not a JSON list: {raw!r}") from None
                else:
                    raw = text.split(",")
            if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
                raise ContextError(f"context {PREFIX}{name} must be a list of strings, got {raw!r}")
            values = tuple(dict.fromkeys(v.strip() for v in raw if v.strip()))  # trimmed, in order, once each
            return values

        buckets = strings("existingBuckets")
        for name in buckets:
            if not BUCKET_NAME.fullmatch(name):
                raise ContextError(f"context {PREFIX}existingBuckets: {name!r} is not an S3 bucket name")
        prefixes = strings("keyPrefixes")
        if prefixes and not buckets:
            raise ContextError(
                f"context {PREFIX}keyPrefixes applies to existing buckets only; set {PREFIX}existingBuckets too"
            )
        for prefix in prefixes:
            if prefix.startswith("/"):
                raise ContextError(f"context {PREFIX}keyPrefixes: {prefix!r} must not start with '/' (S3 keys do not)")
            if len(prefix.encode()) > 1024:
                raise ContextError(f"context {PREFIX}keyPrefixes: {prefix[:40]!r}... is longer than an S3 key can be")
            # The grants name `bucket/prefix*`: IAM would read these as wildcards or a policy variable, not as the key
            for special in IAM_SPECIALS:
                if special in prefix:
                    raise ContextError(
                        f"context {PREFIX}keyPrefixes: {prefix!r} has {special!r}, which IAM reads as a wildcard or a"
                        " policy variable in the function's grant; use a prefix without it"
                    )
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in prefix):
                raise ContextError(
                    f"context {PREFIX}keyPrefixes: {prefix!r} has a control character; use a printable prefix"
                )
        pair = overlapping(prefixes)
        if pair:
            raise ContextError(
                f"context {PREFIX}keyPrefixes: {pair[0]!r} already covers {pair[1]!r}; S3 refuses overlapping"
                " notification prefixes, so drop the longer one"
            )
        delivery = str(get("notifications", Delivery.S3.value)).lower()
        if delivery not in tuple(Delivery):
            raise ContextError(f"context {PREFIX}notifications must be s3 or eventbridge, got {delivery!r}")
        if delivery == Delivery.S3:
            refuse_unsettled_filters(prefixes)
        keys = strings("kmsKeyArns")
        for arn in keys:
            if not KMS_KEY_ARN.fullmatch(arn):
                raise ContextError(
                    f"context {PREFIX}kmsKeyArns: {arn!r} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID;"
                    " an alias does not work in an IAM policy)"
                )

        attributes = str(get("faceAttributes", cls.face_attributes)).upper()
        if attributes not in ("DEFAULT", "ALL"):
            raise ContextError(f"context {PREFIX}faceAttributes must be DEFAULT or ALL, got {attributes!r}")
        removal = str(get("removalPolicy", cls.removal_policy)).lower()
        if removal not in ("retain", "destroy"):
            raise ContextError(f"context {PREFIX}removalPolicy must be retain or destroy, got {removal!r}")
        retention = required_int("logRetentionDays", cls.log_retention_days, 1, 3653)
        if retention not in LOG_RETENTION_DAYS:
            raise ContextError(f"context {PREFIX}logRetentionDays must be one of {LOG_RETENTION_DAYS}, got {retention}")
        email = get("alarmEmail", None)
        if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", str(email)):
            raise ContextError(f"context {PREFIX}alarmEmail must be an email address, got {email!r}")
        quota_raw = get("detectFacesQuota", None)
        try:
            quota = float(quota_raw) if quota_raw is not None else None
        except (TypeError, ValueError):
            raise ContextError(f"context {PREFIX}detectFacesQuota must be a number (TPS), got {quota_raw!r}") from None
        if quota is not None and not 0 < quota <= 10_000:
            raise ContextError(f"context {PREFIX}detectFacesQuota must be between 0 and 10000 TPS, got {quota}")
        return cls(
            face_attributes=attributes,
            reserved_concurrency=integer("reservedConcurrency", None, 1, 10_000),
            detect_faces_quota=quota,
            retry_attempts=required_int("retryAttempts", cls.retry_attempts, 0, 2),
            max_event_age_seconds=required_int("maxEventAgeSeconds", cls.max_event_age_seconds, 60, 6 * 3600),
            log_retention_days=retention,
            removal_policy=removal,
            alarm_email=str(email) if email else None,
            memory_mb=required_int("memoryMb", cls.memory_mb, 128, 10_240),
            timeout_seconds=required_int("timeoutSeconds", cls.timeout_seconds, 10, 900),
            detect_max_attempts=required_int("detectMaxAttempts", cls.detect_max_attempts, 1, 20),
            existing_buckets=buckets,
            key_prefixes=prefixes,
            notifications=Delivery(delivery),
            kms_key_arns=keys,
            backlog_concurrency=integer("backlogConcurrency", None, 1, 10_000),
        )

    @property
    def watched_prefixes(self) -> tuple[str, ...]:
        """The key prefixes the function is notified for and may read: ("",) is every key."""
        return self.key_prefixes or ("",)

    @property
    def function_concurrency(self) -> int | None:
        """Reserved concurrency: explicit, else ceil(quota x D) from the DetectFaces quota, else none."""
        if self.reserved_concurrency is not None:
            return self.reserved_concurrency
        if self.detect_faces_quota is not None:
            return max(1, math.ceil(self.detect_faces_quota * self.expected_duration_seconds))
        return None
