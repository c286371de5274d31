"""The stack's `facepipe:` settings, read and validated in plain Python: no jsii, no aws_cdk import.

Two readers share it. The stack (infra/config.py) hands it the context values its construct tree holds, as the CDK
CLI passed them; a tool that must know what the next deploy will set (doctor) reads the same files the CLI reads,
`read_settings(project_dir, flags)`, and gets the very settings `cdk deploy` with those flags would use. A mistake
is one line naming the key (ContextError), the same from either reader.

How the CDK CLI merges context (aws-cdk's Configuration: the first source holding a key wins, CDK_CONTEXT_JSON
carries the result to the app): `-c key=value` flags (always strings), then the "context" object of the project's
cdk.json, then the project's cdk.context.json (where the CLI caches lookups), then the "context" object of
~/.cdk.json. The AWS CDK developer guide ("Context values and the AWS CDK") lists the same sources.

The defaults are this dataclass's fields (the function's own come from detect_faces.settings.Settings): cdk.json
holds only CDK's feature flags, so no default is written twice.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self, TypeVar

from detect_faces.contract import (
    ASYNC_MAX_EVENT_AGE_SECONDS,
    ASYNC_RETRY_ATTEMPTS,
    FACE_ATTRIBUTE_CHOICES,
    REDACTION_DEFAULT_MARGIN,
    REDACTION_MAX_MARGIN,
    REDACTION_MODES,
    REDACTION_OFF,
    Delivery,
)
from detect_faces.settings import Settings
from detect_faces.subscriptions import UNSETTLED_IN_FILTERS

PREFIX = "facepipe:"
# EventBridge's rules for a bus name (the API reference, CreateEventBus: [/\.\-_A-Za-z0-9]+, 1-256) and its ARN.
EVENT_BUS_NAME = re.compile(r"[/.\-_A-Za-z0-9]{1,256}")
EVENT_BUS_ARN = re.compile(r"arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/[/.\-_A-Za-z0-9]{1,256}")
DEFAULT_STACK_NAME = "Facepipe"
PROJECT_CONFIG = "cdk.json"  # its "context" object
PROJECT_CONTEXT = "cdk.context.json"  # the whole file is context
USER_DEFAULTS = Path("~/.cdk.json")  # its "context" object

# The retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)  # fmt: skip
# S3's bucket naming rules (general purpose buckets): 3-63 characters, lower case, digits, dots and hyphens.
BUCKET_NAME = re.compile(r"(?!xn--)(?!sthree-)(?!.*\.\.)(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
MAX_KEY_BYTES = 1024  # the longest S3 key, in UTF-8 bytes
# What IAM reads specially in a resource: the wildcards, and the start of a policy variable.
IAM_SPECIALS = ("*", "?", "${")
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
KMS_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# CloudFormation's stack names: a letter, then letters, digits and hyphens, at most 128 characters.
STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,127}")
# What an integer setting that may be unset accepts for "unset".
UNSET_WORDS = ("none", "null", "unreserved")
MAX_CONCURRENCY = 10_000
MAX_DETECT_FACES_QUOTA = 10_000  # TPS


class ContextError(ValueError):
    """A `facepipe:` setting (or a context file) is not right; the message is one line naming it."""


_Number = TypeVar("_Number", int, float)
Context = Mapping[str, object]  # context keys ("facepipe:memoryMb", feature flags, ...) to their JSON values


# ---- the settings --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FacepipeSettings:
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
    stack_name: str = DEFAULT_STACK_NAME
    # Outcome events (docs/DESIGN.md, "Outcome events"): on by default; the bus is the default one unless named.
    events: bool = True
    event_bus: str | None = None  # a bus name, or its ARN
    # Redacted copies (docs/REDACTION.md): off, or how a face is hidden (blur, pixelate, fill); the copies' bucket, an
    # existing one that is not watched (None: the stack creates one); the margin added to each side of a face's box.
    redaction: str = REDACTION_OFF
    redaction_bucket: str | None = None
    redaction_margin: float = REDACTION_DEFAULT_MARGIN

    @classmethod
    def from_values(cls, context: Context) -> Self:
        """Every `facepipe:` key of `context` (the merged context, as the CDK CLI hands it to the app), validated;
        other keys (CDK's feature flags) are not looked at. A key that is absent, null or "" takes its default."""
        read = _Reader(context)
        # In this order: with several mistakes, the first one named is the same as it always was.
        buckets = read.existing_buckets()
        prefixes = read.key_prefixes(buckets)
        notifications = read.notifications(prefixes)
        settings = cls(
            existing_buckets=buckets,
            key_prefixes=prefixes,
            notifications=notifications,
            kms_key_arns=read.kms_key_arns(),
            face_attributes=read.choice("faceAttributes", cls.face_attributes, FACE_ATTRIBUTE_CHOICES, str.upper),
            removal_policy=read.choice("removalPolicy", cls.removal_policy, ("retain", "destroy"), str.lower),
            log_retention_days=read.log_retention_days(cls.log_retention_days),
            alarm_email=read.alarm_email(),
            detect_faces_quota=read.detect_faces_quota(),
            reserved_concurrency=read.optional_int("reservedConcurrency", 1, MAX_CONCURRENCY),
            retry_attempts=read.required_int("retryAttempts", cls.retry_attempts, 0, 2),
            max_event_age_seconds=read.required_int("maxEventAgeSeconds", cls.max_event_age_seconds, 60, 6 * 3600),
            memory_mb=read.required_int("memoryMb", cls.memory_mb, 128, 10_240),
            timeout_seconds=read.required_int("timeoutSeconds", cls.timeout_seconds, 10, 900),
            detect_max_attempts=read.required_int("detectMaxAttempts", cls.detect_max_attempts, 1, 20),
            backlog_concurrency=read.optional_int("backlogConcurrency", 1, MAX_CONCURRENCY),
            stack_name=read.stack_name(cls.stack_name),
            events=read.choice("events", "on", ("on", "off"), str.lower) == "on",
            event_bus=read.event_bus(),
        )
        # After every other key (their mistakes are named first, as they always were): redaction depends on two.
        redaction = read.redaction(settings.events)
        return replace(
            settings,
            redaction=redaction,
            redaction_bucket=read.redaction_bucket(redaction, buckets),
            redaction_margin=read.redaction_margin(redaction),
        )

    @property
    def watched_prefixes(self) -> tuple[str, ...]:
        """The key prefixes the function is notified for and may read: ("",) is every key."""
        return self.key_prefixes or ("",)

    @property
    def redacts(self) -> bool:
        """Whether the stack makes redacted copies (facepipe:redaction is not off)."""
        return self.redaction != REDACTION_OFF

    @property
    def function_concurrency(self) -> int | None:
        """Reserved concurrency: explicit, else ceil(quota x D) from the DetectFaces quota, else none."""
        if self.reserved_concurrency is not None:
            return self.reserved_concurrency
        if self.detect_faces_quota is not None:
            return max(1, math.ceil(self.detect_faces_quota * self.expected_duration_seconds))
        return None


# ---- the context, as the CDK CLI merges it -------------------------------------------------------------------------
def read_settings(
    project_dir: Path, flags: Sequence[str] = (), *, user_defaults: Path | None = USER_DEFAULTS
) -> FacepipeSettings:
    """The settings a `cdk deploy -c FLAG ...` run from `project_dir` would use: what its cdk.json,
    cdk.context.json and `user_defaults` (~/.cdk.json; None: not read) say, `flags` ("facepipe:key=value", as
    given to -c) over them."""
    return FacepipeSettings.from_values(merged_context(project_dir, flags, user_defaults=user_defaults))


def merged_context(
    project_dir: Path, flags: Sequence[str] = (), *, user_defaults: Path | None = USER_DEFAULTS
) -> dict[str, object]:
    """The context the CDK CLI hands the app: the -c flags, then cdk.json's "context", then cdk.context.json, then
    ~/.cdk.json's "context"; for a key in several, the first one wins."""
    sources: list[Mapping[str, object]] = [
        parse_flags(flags),
        _context_object(project_dir / PROJECT_CONFIG),
        _json_object(project_dir / PROJECT_CONTEXT),
        _context_object(user_defaults.expanduser()) if user_defaults is not None else {},
    ]
    merged: dict[str, object] = {}
    for source in reversed(sources):  # the first source's keys written last
        merged.update(source)
    return merged


def parse_flags(flags: Iterable[str]) -> dict[str, str]:
    """`-c key=value` flags as the CDK CLI reads them: split at the first "=", the value a string, a later flag for
    the same key winning. The CLI skips a flag with no "=" (with a warning); here it is an error, to be fixed."""
    context: dict[str, str] = {}
    for flag in flags:
        key, equals, value = flag.partition("=")
        if not equals or not key:
            raise ContextError(f"context flag {flag!r} is not key=value (as in -c {PREFIX}memoryMb=512)")
        context[key] = value
    return context


def _json_object(path: Path) -> dict[str, object]:
    """A JSON file that holds an object, or {} when there is no file."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ContextError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ContextError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def _context_object(path: Path) -> dict[str, object]:
    """The "context" object of a CDK configuration file (cdk.json, ~/.cdk.json), or {}."""
    context = _json_object(path).get("context", {})
    if not isinstance(context, dict):
        raise ContextError(f'{path}: "context" must be a JSON object, got {type(context).__name__}')
    return context


# ---- one reader per kind of value, and per key that needs more ----------------------------------------------------
class _Reader:
    """Reads `facepipe:` keys from one context; each method checks one key, and names it in its ContextError."""

    def __init__(self, context: Context) -> None:
        self._context = context

    def value(self, name: str) -> object | None:
        """The key's value; None when it is absent, null or "" (a flag given empty means "the default")."""
        value = self._context.get(PREFIX + name)
        return None if value is None or value == "" else value

    # ---- kinds of values
    def optional_int(self, name: str, lo: int, hi: int, default: int | None = None) -> int | None:
        """An integer in [lo, hi], or None (absent, or "none" / "null" / "unreserved")."""
        raw = self.value(name)
        if raw is None:
            raw = default
        if raw is None or (isinstance(raw, str) and raw.lower() in UNSET_WORDS):
            return None
        value = _converted(raw, int)
        if value is None:
            raise ContextError(f"context {PREFIX}{name} must be an integer, got {raw!r}")
        if not lo <= value <= hi:
            raise ContextError(f"context {PREFIX}{name} must be between {lo} and {hi}, got {value}")
        return value

    def required_int(self, name: str, default: int, lo: int, hi: int) -> int:
        value = self.optional_int(name, lo, hi, default)
        if value is None:
            raise ContextError(f"context {PREFIX}{name} is required")
        return value

    def choice(self, name: str, default: str, choices: Sequence[str], normal: Callable[[str], str]) -> str:
        """One of `choices`, compared after `normal` (str.upper or str.lower)."""
        raw = self.value(name)
        value = normal(str(default if raw is None else raw))
        if value not in choices:
            raise ContextError(f"context {PREFIX}{name} must be {' or '.join(choices)}, got {value!r}")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        """A list: a JSON list in cdk.json or on the command line (-c key='["a","b"]'), or comma-separated. Trimmed,
        in order, once each; empty items are dropped."""
        raw = self.value(name)
        if raw is None:
            raw = []
        if isinstance(raw, str):
            raw = self._split(name, raw)
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            raise ContextError(f"context {PREFIX}{name} must be a list of strings, got {raw!r}")
        return tuple(dict.fromkeys(v.strip() for v in raw if v.strip()))

    @staticmethod
    def _split(name: str, raw: str) -> object:
        text = raw.strip()
        if not text.startswith("["):
            return text.split(",")
        try:
            return json.loads(text)
        except ValueError:
            raise ContextError(f"context {PREFIX}{name} is not a JSON list: {raw!r}") from None

    # ---- keys with rules of their own
    def existing_buckets(self) -> tuple[str, ...]:
        buckets = self.strings("existingBuckets")
        for name in buckets:
            if not BUCKET_NAME.fullmatch(name):
                raise ContextError(f"context {PREFIX}existingBuckets: {name!r} is not an S3 bucket name")
        return buckets

    def key_prefixes(self, buckets: tuple[str, ...]) -> tuple[str, ...]:
        prefixes = self.strings("keyPrefixes")
        if prefixes and not buckets:
            raise ContextError(
                f"context {PREFIX}keyPrefixes applies to existing buckets only; set {PREFIX}existingBuckets too"
            )
        for prefix in prefixes:
            check_key_prefix(prefix)
        pair = overlapping(prefixes)
        if pair:
            raise ContextError(
                f"context {PREFIX}keyPrefixes: {pair[0]!r} already covers {pair[1]!r}; S3 refuses overlapping"
                " notification prefixes, so drop the longer one"
            )
        return prefixes

    def notifications(self, prefixes: tuple[str, ...]) -> Delivery:
        delivery = Delivery(self.choice("notifications", Delivery.S3.value, tuple(Delivery), str.lower))
        if delivery == Delivery.S3:
            refuse_unsettled_filters(prefixes)
        return delivery

    def kms_key_arns(self) -> tuple[str, ...]:
        keys = self.strings("kmsKeyArns")
        for arn in keys:
            if not KMS_KEY_ARN.fullmatch(arn):
                raise ContextError(
                    f"context {PREFIX}kmsKeyArns: {arn!r} is not a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID;"
                    " an alias does not work in an IAM policy)"
                )
        return keys

    def log_retention_days(self, default: int) -> int:
        retention = self.required_int("logRetentionDays", default, 1, 3653)
        if retention not in LOG_RETENTION_DAYS:
            raise ContextError(f"context {PREFIX}logRetentionDays must be one of {LOG_RETENTION_DAYS}, got {retention}")
        return retention

    def alarm_email(self) -> str | None:
        email = self.value("alarmEmail")
        if email is not None and not EMAIL.fullmatch(str(email)):
            raise ContextError(f"context {PREFIX}alarmEmail must be an email address, got {email!r}")
        return str(email) if email else None

    def detect_faces_quota(self) -> float | None:
        raw = self.value("detectFacesQuota")
        if raw is None:
            return None
        quota = _converted(raw, float)
        if quota is None:
            raise ContextError(f"context {PREFIX}detectFacesQuota must be a number (TPS), got {raw!r}")
        if not 0 < quota <= MAX_DETECT_FACES_QUOTA:
            raise ContextError(
                f"context {PREFIX}detectFacesQuota must be between 0 and {MAX_DETECT_FACES_QUOTA} TPS, got {quota}"
            )
        return quota

    def event_bus(self) -> str | None:
        raw = self.value("eventBus")
        if raw is None:
            return None
        bus = str(raw)
        if not (EVENT_BUS_NAME.fullmatch(bus) or EVENT_BUS_ARN.fullmatch(bus)):
            raise ContextError(
                f"context {PREFIX}eventBus must be an event bus name (letters, digits, . - _ /, at most 256) or its"
                f" ARN (arn:aws:events:REGION:ACCOUNT:event-bus/NAME), got {bus!r}"
            )
        return bus

    def redaction(self, events: bool) -> str:
        mode = self.choice("redaction", REDACTION_OFF, (REDACTION_OFF, *REDACTION_MODES), str.lower)
        if mode != REDACTION_OFF and not events:
            raise ContextError(
                f"context {PREFIX}redaction={mode} needs {PREFIX}events=on: the copies are made from the outcome events"
            )
        return mode

    def redaction_bucket(self, redaction: str, watched: tuple[str, ...]) -> str | None:
        raw = self.value("redactionBucket")
        if raw is None:
            return None
        if redaction == REDACTION_OFF:
            raise ContextError(
                f"context {PREFIX}redactionBucket applies to redacted copies only; set {PREFIX}redaction too"
                f" ({', '.join(REDACTION_MODES)})"
            )
        name = str(raw).strip()
        if not BUCKET_NAME.fullmatch(name):
            raise ContextError(f"context {PREFIX}redactionBucket: {name!r} is not an S3 bucket name")
        # Whatever the prefixes: a copy goes to "<source bucket>/<key>", which a watched prefix may cover.
        if name in watched:
            raise ContextError(
                f"context {PREFIX}redactionBucket: {name!r} is a watched bucket ({PREFIX}existingBuckets), and copies"
                " written there could be analysed and copied again; name a bucket facepipe does not watch"
            )
        return name

    def redaction_margin(self, redaction: str) -> float:
        raw = self.value("redactionMargin")
        if raw is None:
            return REDACTION_DEFAULT_MARGIN
        if redaction == REDACTION_OFF:
            raise ContextError(
                f"context {PREFIX}redactionMargin applies to redacted copies only; set {PREFIX}redaction too"
                f" ({', '.join(REDACTION_MODES)})"
            )
        margin = _converted(raw, float)
        if margin is None or not 0 <= margin <= REDACTION_MAX_MARGIN:  # also refuses nan
            raise ContextError(
                f"context {PREFIX}redactionMargin must be a fraction from 0 to {REDACTION_MAX_MARGIN:g}"
                f" (0.15 = 15 %), got {raw!r}"
            )
        return margin

    def stack_name(self, default: str) -> str:
        raw = self.value("stackName")
        name = str(default if raw is None else raw)
        if not STACK_NAME.fullmatch(name):
            raise ContextError(
                f"context {PREFIX}stackName must be a CloudFormation stack name (a letter, then letters, digits and"
                f" hyphens, at most 128), got {name!r}"
            )
        return name


def _converted(raw: object, kind: Callable[[str | float], _Number]) -> _Number | None:
    """`raw` (any JSON value) as an int or a float, or None when it is not one (a list, "many", infinity)."""
    if not isinstance(raw, str | int | float):
        return None
    try:
        return kind(raw)
    except (ValueError, OverflowError):
        return None


# ---- the rules of a key prefix --------------------------------------------------------------------------------------
def check_key_prefix(prefix: str) -> None:
    """One prefix of `facepipe:keyPrefixes`, as S3 keys and the function's IAM grant (`bucket/prefix*`) need it."""
    if prefix.startswith("/"):
        raise ContextError(f"context {PREFIX}keyPrefixes: {prefix!r} must not start with '/' (S3 keys do not)")
    if len(prefix.encode()) > MAX_KEY_BYTES:
        raise ContextError(f"context {PREFIX}keyPrefixes: {prefix[:40]!r}... is longer than an S3 key can be")
    # The grants name `bucket/prefix*`: IAM would read these as wildcards or a policy variable, not as the key
    for special in IAM_SPECIALS:
        if special in prefix:
            raise ContextError(
                f"context {PREFIX}keyPrefixes: {prefix!r} has {special!r}, which IAM reads as a wildcard or a"
                " policy variable in the function's grant; use a prefix without it"
            )
    if CONTROL_CHARACTER.search(prefix):
        raise ContextError(f"context {PREFIX}keyPrefixes: {prefix!r} has a control character; use a printable prefix")


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
