"""`doctor`: is this account, region and stack ready for facepipe? One line per check (facepipe/ops/doctor.py).

It checks what the next `make deploy` will set: the `facepipe:` settings of the project's cdk.json, cdk.context.json
and ~/.cdk.json, the `-c` flags given after `--` (as `make deploy CDK_ARGS=...` gives them: `make doctor` passes
CDK_ARGS so), then doctor's own `-c` and setting options (--reserved-concurrency, --existing-bucket, ...), each
over what came before it."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from detect_faces.contract import Delivery
from infra.settings import PREFIX

from .base import CliError, Subcommands

# doctor's options that name one setting each: option dest -> the facepipe: key it sets.
SETTING_OPTIONS = {
    "reserved_concurrency": "reservedConcurrency",
    "retry_attempts": "retryAttempts",
    "max_event_age": "maxEventAgeSeconds",
    "notifications": "notifications",
}
LIST_OPTIONS = {"existing_bucket": "existingBuckets", "key_prefix": "keyPrefixes", "kms_key_arn": "kmsKeyArns"}


def cmd_doctor(args: argparse.Namespace) -> int:
    import boto3

    from facepipe.ops import doctor

    settings, plan = doctor.settings(Path(args.project_dir), context_flags(args))
    checks = [settings]
    if plan is not None:  # with a setting the deploy would refuse, nothing it would do can be judged
        if args.stack:
            plan = dataclasses.replace(plan, stack_name=args.stack)  # whose notification entries are facepipe's
        session = boto3.session.Session()
        checks += doctor.run(session.client, session.region_name, plan, stack=args.stack, with_smoke=args.smoke)
    if args.json:
        print(json.dumps([c.as_dict() for c in checks]))
    else:
        for check in checks:
            print(f"{check.status:<4}  {check.name:<18} {check.detail}")
            if check.advice and check.status != doctor.OK:
                print(f"{'':<24} -> {check.advice}")
    return 1 if any(c.status == doctor.FAIL for c in checks) else 0


def context_flags(args: argparse.Namespace) -> list[str]:
    """Every `key=value` context flag, the later over the earlier: the CDK CLI arguments' `-c` flags, doctor's own
    `-c` flags, then its setting options as the flags they stand for."""
    flags = [*cdk_context_flags(args.cdk_args), *args.context]
    for dest, key in SETTING_OPTIONS.items():
        value = getattr(args, dest)
        if value is not None:
            flags.append(f"{PREFIX}{key}={value}")
    for dest, key in LIST_OPTIONS.items():
        values = getattr(args, dest)
        if values:
            flags.append(f"{PREFIX}{key}={json.dumps(values)}")
    return flags


def cdk_context_flags(cdk_args: Sequence[str]) -> list[str]:
    """The `-c KEY=VALUE` / `--context KEY=VALUE` flags among CDK CLI arguments (as in CDK_ARGS), in order; the other
    arguments (--profile NAME, --require-approval never, ...) say nothing about the settings and are left out."""
    cdk = argparse.ArgumentParser(prog="cdk", add_help=False, allow_abbrev=False, exit_on_error=False)
    cdk.add_argument("-c", "--context", action="append", default=[])
    try:
        known, _ = cdk.parse_known_args(list(cdk_args))
    except argparse.ArgumentError as exc:
        raise CliError(f"the CDK arguments after --: {exc}") from None
    return list(known.context)


def register(sub: Subcommands) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check this account and region before a deploy, and the deployed stack after it",
        description="One line per check: ok / warn / fail, with advice. Exit status 1 on any fail.\n\n"
        "The settings checked are the next deploy's: the facepipe: keys of cdk.json, cdk.context.json and\n"
        "~/.cdk.json, then the CDK arguments after -- (their -c flags), then the options below, each over the\n"
        "ones before it. make doctor passes CDK_ARGS after --, as make deploy passes them to cdk.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m facepipe doctor                      # before make deploy\n"
        "  python -m facepipe doctor --stack Facepipe     # after it\n"
        "  python -m facepipe doctor --stack Facepipe --smoke\n"
        "  python -m facepipe doctor --reserved-concurrency 20 --json\n"
        "  python -m facepipe doctor -- -c facepipe:existingBuckets=my-photos -c facepipe:keyPrefixes=uploads/\n"
        '  make doctor CDK_ARGS="-c facepipe:reservedConcurrency=20"   # the same CDK_ARGS as make deploy',
    )
    doctor.add_argument("--stack", help="also check this deployed stack (outputs, notifications, async config, alarms)")
    doctor.add_argument(
        "--project-dir",
        default=".",
        metavar="DIR",
        help="where cdk.json and cdk.context.json are (default: the current directory, as for cdk)",
    )
    doctor.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a context value, as cdk's -c (repeat): -c facepipe:reservedConcurrency=20",
    )
    settings = doctor.add_argument_group("settings", "each sets one facepipe: key, over the context")
    settings.add_argument(
        "--reserved-concurrency", type=int, default=None, help="facepipe:reservedConcurrency (the function's)"
    )
    settings.add_argument("--retry-attempts", type=int, default=None, help="facepipe:retryAttempts")
    settings.add_argument("--max-event-age", type=int, default=None, help="facepipe:maxEventAgeSeconds")
    settings.add_argument(
        "--existing-bucket", action="append", default=[], metavar="NAME", help="facepipe:existingBuckets (repeat)"
    )
    settings.add_argument("--key-prefix", action="append", default=[], help="facepipe:keyPrefixes (repeat)")
    settings.add_argument(
        "--notifications", choices=[d.value for d in Delivery], default=None, help="facepipe:notifications"
    )
    settings.add_argument("--kms-key-arn", action="append", default=[], help="facepipe:kmsKeyArns (repeat)")
    doctor.add_argument(
        "--smoke", action="store_true", help="with --stack: one sample photo through the pipeline, then deleted"
    )
    doctor.add_argument("--json", action="store_true", help="the checks as one JSON list")
    doctor.add_argument(
        "cdk_args",
        nargs="*",
        metavar="-- CDK_ARGS",
        help="after --: CDK CLI arguments, as in make deploy CDK_ARGS=...; their -c flags are read",
    )
    doctor.set_defaults(func=cmd_doctor)
