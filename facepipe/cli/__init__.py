"""python -m facepipe (and the `facepipe` console script): local mode (demo, local up) and the operator commands.

One module per command family adds its parsers and runs its commands: local.py (demo, local up), results.py
(results, show), failures.py (failures, redrive), backfill.py, doctor.py. Each parses and prints; the work is done
by facepipe.ops and facepipe.local. Errors a user can fix are one line on stderr and exit status 1."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

from botocore.exceptions import BotoCoreError, ClientError

from facepipe.ops import OpsError

from . import backfill, doctor, failures, local, results
from .base import CliError

__all__ = ["CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m facepipe",
        description="facepipe: S3 uploads -> Rekognition DetectFaces -> DynamoDB, locally or on AWS.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m facepipe demo\n  python -m facepipe local up --port 4566\n"
        "  python -m facepipe results --stack Facepipe\n  python -m facepipe failures --local",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    local.register(sub)
    results.register(sub)
    failures.register(sub)
    backfill.register(sub)
    doctor.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Powertools warns on every invocation without metrics (skipped test events); nothing to act on locally.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, OpsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
