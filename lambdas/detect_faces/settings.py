"""Typed settings, read from the environment once per cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .contract import FACE_ATTRIBUTE_CHOICES, EnvVar


class ConfigurationError(ValueError):
    """An environment variable is missing or invalid; the message names it."""


def required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is required and is empty or unset")
    return value


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float, integer: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ConfigurationError(f"environment variable {name} must be {kind}, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"environment variable {name} must be >= {minimum}, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    results_table: str
    failure_queue_url: str
    face_attributes: str = "DEFAULT"
    # DetectFaces attempts inside one invocation for throttling / InternalServerError (1 = no retry).
    detect_max_attempts: int = 10
    backoff_base_seconds: float = 0.25
    backoff_max_seconds: float = 8.0
    # How long a claim on an image protects it from a concurrent duplicate; the function timeout is right.
    claim_lease_seconds: int = 120
    # How long the tombstone of a deleted image is kept (it stops a late create event resurrecting results).
    tombstone_ttl_seconds: int = 7 * 24 * 3600
    # The backlog function's DetectFaces attempts per task: a short retry at most, since S3 Batch Operations
    # retries a TemporaryFailure later and the backlog leaves the quota to live uploads (docs/DESIGN.md).
    backlog_detect_max_attempts: int = 2
    # ... and the wait before that retry: longer than the live function's, so that when the quota is exhausted the
    # backlog's calls thin out and live uploads take the tokens (bench/backlog.py measured it: docs/BENCHMARKS.md).
    backlog_backoff_base_seconds: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        attributes = env.get(EnvVar.FACE_ATTRIBUTES, "DEFAULT").strip().upper() or "DEFAULT"
        if attributes not in FACE_ATTRIBUTE_CHOICES:
            raise ConfigurationError(
                f"environment variable {EnvVar.FACE_ATTRIBUTES} must be one of {', '.join(FACE_ATTRIBUTE_CHOICES)}, "
                f"got {env.get(EnvVar.FACE_ATTRIBUTES)!r}"
            )
        queue_url = required(env, EnvVar.FAILURE_QUEUE_URL)
        if not queue_url.startswith(("https://", "http://")):
            raise ConfigurationError(
                f"environment variable {EnvVar.FAILURE_QUEUE_URL} must be a queue URL, got {queue_url!r}"
            )
        return cls(
            results_table=required(env, EnvVar.RESULTS_TABLE),
            failure_queue_url=queue_url,
            face_attributes=attributes,
            detect_max_attempts=int(
                _number(env, EnvVar.DETECT_MAX_ATTEMPTS, cls.detect_max_attempts, minimum=1, integer=True)
            ),
            backoff_base_seconds=_number(env, EnvVar.DETECT_BACKOFF_BASE_SECONDS, cls.backoff_base_seconds, minimum=0),
            backoff_max_seconds=_number(env, EnvVar.DETECT_BACKOFF_MAX_SECONDS, cls.backoff_max_seconds, minimum=0),
            claim_lease_seconds=int(
                _number(env, EnvVar.CLAIM_LEASE_SECONDS, cls.claim_lease_seconds, minimum=1, integer=True)
            ),
            backlog_detect_max_attempts=int(
                _number(
                    env, EnvVar.BACKLOG_DETECT_MAX_ATTEMPTS, cls.backlog_detect_max_attempts, minimum=1, integer=True
                )
            ),
            backlog_backoff_base_seconds=_number(
                env, EnvVar.BACKLOG_BACKOFF_BASE_SECONDS, cls.backlog_backoff_base_seconds, minimum=0
            ),
        )

    def for_backlog(self) -> Settings:
        """The backlog function's settings (backlog.py): these, with DetectFaces attempts cut to
        backlog_detect_max_attempts and the backoff window widened to backlog_backoff_base_seconds."""
        return replace(
            self,
            detect_max_attempts=self.backlog_detect_max_attempts,
            backoff_base_seconds=self.backlog_backoff_base_seconds,
        )

    def to_env(self) -> dict[str, str]:
        """The environment that from_env reads back as these settings: the stack and local mode set it."""
        return {
            EnvVar.RESULTS_TABLE: self.results_table,
            EnvVar.FAILURE_QUEUE_URL: self.failure_queue_url,
            EnvVar.FACE_ATTRIBUTES: self.face_attributes,
            EnvVar.DETECT_MAX_ATTEMPTS: str(self.detect_max_attempts),
            EnvVar.DETECT_BACKOFF_BASE_SECONDS: str(self.backoff_base_seconds),
            EnvVar.DETECT_BACKOFF_MAX_SECONDS: str(self.backoff_max_seconds),
            EnvVar.CLAIM_LEASE_SECONDS: str(self.claim_lease_seconds),
            EnvVar.BACKLOG_DETECT_MAX_ATTEMPTS: str(self.backlog_detect_max_attempts),
            EnvVar.BACKLOG_BACKOFF_BASE_SECONDS: str(self.backlog_backoff_base_seconds),
        }
