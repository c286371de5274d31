"""Stack settings from CDK context (`-c facepipe:key=value`, or a "context" entry in cdk.json), validated in one
place. The defaults are this dataclass's fields (the function's own come from detect_faces.settings.Settings):
cdk.json holds only CDK's feature flags, so no default is written twice."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from constructs import Construct

from detect_faces.contract import ASYNC_MAX_EVENT_AGE_SECONDS, ASYNC_RETRY_ATTEMPTS
from detect_faces.settings import Settings

PREFIX = "facepipe:"
POWERTOOLS_VERSION = "3.37.0"
LAYER_DIR = "build/powertools-layer"
LAMBDA_CODE_DIR = "lambdas"
HANDLER = "detect_faces.handler.lambda_handler"


# The retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)  # fmt: skip


class ContextError(ValueError):
    pass


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
        )

    @property
    def function_concurrency(self) -> int | None:
        """Reserved concurrency: explicit, else ceil(quota x D) from the DetectFaces quota, else none."""
        if self.reserved_concurrency is not None:
            return self.reserved_concurrency
        if self.detect_faces_quota is not None:
            return max(1, math.ceil(self.detect_faces_quota * self.expected_duration_seconds))
        return None
