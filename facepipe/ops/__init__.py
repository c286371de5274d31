"""The operator commands (results, show, failures, redrive, backfill, doctor), one module per command family.

Each works on a Target and takes its boto3 clients, a clock and a sleep, so the tests drive it with moto and
Stubbers. Nothing here prints or imports local mode: the CLI (facepipe/cli/) picks the Target (a deployed stack
here, the local stack from local mode's state), calls these and prints what they return.
"""

from __future__ import annotations

from .backfill import BackfillReport, backfill, backfill_event, existing_objects, has_result_for
from .errors import OpsError
from .failures import UNKNOWN_KEY, Failure, list_failures
from .pacing import RateLimiter
from .redrive import CLOCK_SKEW_MS, RedriveReport, redrive
from .results import RedactedCopy, list_results, result_json, show, show_redacted
from .targets import Target, TargetKind, parse_s3_uri, stack_target

__all__ = [
    "CLOCK_SKEW_MS",
    "UNKNOWN_KEY",
    "BackfillReport",
    "Failure",
    "OpsError",
    "RateLimiter",
    "RedactedCopy",
    "RedriveReport",
    "Target",
    "TargetKind",
    "backfill",
    "backfill_event",
    "existing_objects",
    "has_result_for",
    "list_failures",
    "list_results",
    "parse_s3_uri",
    "redrive",
    "result_json",
    "show",
    "show_redacted",
    "stack_target",
]
