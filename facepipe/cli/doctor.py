"""`doctor`: is this account, region and stack ready for facepipe? One line per check (facepipe/ops/doctor.py)."""

from __future__ import annotations

import argparse
import json

from detect_faces.contract import ASYNC_MAX_EVENT_AGE_SECONDS, ASYNC_RETRY_ATTEMPTS, Delivery

from .base import Subcommands


def cmd_doctor(args: argparse.Namespace) -> int:
    import boto3

    from facepipe.ops import doctor

    session = boto3.session.Session()
    plan = doctor.Plan(
        reserved_concurrency=args.reserved_concurrency,
        retry_attempts=args.retry_attempts,
        max_event_age_seconds=args.max_event_age,
        existing_buckets=tuple(args.existing_bucket),
        key_prefixes=tuple(args.key_prefix),
        notifications=Delivery(args.notifications),
        kms_key_arns=tuple(args.kms_key_arn),
        stack_name=args.stack or doctor.Plan.stack_name,
    )
    checks = doctor.run(session.client, session.region_name, plan, stack=args.stack, with_smoke=args.smoke)
    if args.json:
        print(json.dumps([c.as_dict() for c in checks]))
    else:
        for check in checks:
            print(f"{check.status:<4}  {check.name:<18} {check.detail}")
            if check.advice and check.status != doctor.OK:
                print(f"{'':<24} -> {check.advice}")
    return 1 if any(c.status == doctor.FAIL for c in checks) else 0


def register(sub: Subcommands) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check this account and region before a deploy, and the deployed stack after it",
        description="One line per check: ok / warn / fail, with advice. Exit status 1 on any fail.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m facepipe doctor                      # before make deploy\n"
        "  python -m facepipe doctor --stack Facepipe     # after it\n"
        "  python -m facepipe doctor --stack Facepipe --smoke\n"
        "  python -m facepipe doctor --reserved-concurrency 20 --json\n"
        "  python -m facepipe doctor --existing-bucket my-photos --key-prefix uploads/   # before attaching",
    )
    doctor.add_argument("--stack", help="also check this deployed stack (outputs, notifications, async config, alarms)")
    doctor.add_argument(
        "--reserved-concurrency", type=int, default=None, help="the facepipe:reservedConcurrency you deploy with"
    )
    doctor.add_argument("--retry-attempts", type=int, default=ASYNC_RETRY_ATTEMPTS, help="facepipe:retryAttempts")
    doctor.add_argument(
        "--max-event-age", type=int, default=ASYNC_MAX_EVENT_AGE_SECONDS, help="facepipe:maxEventAgeSeconds"
    )
    doctor.add_argument(
        "--existing-bucket", action="append", default=[], metavar="NAME", help="facepipe:existingBuckets (repeat)"
    )
    doctor.add_argument("--key-prefix", action="append", default=[], help="facepipe:keyPrefixes (repeat)")
    doctor.add_argument(
        "--notifications",
        choices=[d.value for d in Delivery],
        default=Delivery.S3.value,
        help="facepipe:notifications",
    )
    doctor.add_argument("--kms-key-arn", action="append", default=[], help="facepipe:kmsKeyArns (repeat)")
    doctor.add_argument(
        "--smoke", action="store_true", help="with --stack: one sample photo through the pipeline, then deleted"
    )
    doctor.add_argument("--json", action="store_true", help="the checks as one JSON list")
    doctor.set_defaults(func=cmd_doctor)
