"""`failures` (what is in the DLQ, without consuming it) and `redrive` (replay it once the cause is fixed)."""

from __future__ import annotations

import argparse
import json
import textwrap

from facepipe import ops
from facepipe.ops.failures import RAW_EXCERPT

from .base import Subcommands, operator_command, target_of
from .format import cell, progress_bar, table


def cmd_failures(args: argparse.Namespace) -> int:
    failures = ops.list_failures(target_of(args), limit=args.max, where=args.where)
    if args.json:
        for failure in failures:
            unread = {} if failure.body is not None else {"raw": failure.raw[:RAW_EXCERPT]}
            print(json.dumps({**failure.summary(), "record": failure.body, **unread}))
        return 0
    rows = []
    for f in (x.summary() for x in failures):
        # A message can hold anything: each cell is one line of text, cut to a width (the key whole).
        message = f"[{f['problem']}] {f['error_message']}" if f["problem"] else f["error_message"]
        rows.append([cell(f["key"]), cell(f["version_id"] or "-", 40), cell(f["error_type"], 40),
                     cell(textwrap.shorten(message, 80 if f["problem"] else 60)), cell(f["attempts"] or "-", 10),
                     cell(f["time"], 30)])  # fmt: skip
    print(table(rows, ["key", "version", "errorType", "message", "attempts", "time"]) if rows else "DLQ is empty")
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    target = target_of(args)
    with progress_bar(args.max, "redrive") as bar:
        report = ops.redrive(
            target,
            max_messages=args.max,
            dry_run=args.dry_run,
            limiter=ops.RateLimiter(args.rate),
            progress=bar.update,
        )
    if args.dry_run:
        for planned in report.planned:
            print(f"would replay {planned['key']} ({planned['error_type']}: {planned['error_message']})")
        print(f"{len(report.planned)} record(s) would be replayed; nothing was changed")
    else:
        through = ", ".join(f"{name} ({count})" for name, count in sorted(report.replayed_to.items()))
        if set(report.replayed_to) <= {target.function_name}:
            through = target.function_name
        print(f"replayed {report.replayed} record(s) through {through}; deleted them from the DLQ")
    if report.skipped:
        print(f"{report.skipped} message(s) cannot be replayed and were left in the DLQ:")
        for reason, count in sorted(report.cannot_replay.items(), key=lambda item: (-item[1], item[0])):
            print(f"  {count:>6}  {cell(reason)}")
        print("  (python -m facepipe failures lists each with its reason)")
    if report.new:
        print(f"{report.new} message(s) arrived after this run began (its own replays' failures among them); left")
    if report.hidden:
        print(f"{report.hidden} message(s) could not be made visible again; they reappear within 5 minutes")
    print(f"left in the DLQ: {report.left} (run {report.run_id})")
    return 0


def register(sub: Subcommands) -> None:
    failures = operator_command(
        sub,
        "failures",
        "list DLQ failure records without consuming them",
        "python -m facepipe failures --stack Facepipe",
        cmd_failures,
    )
    failures.add_argument(
        "where", nargs="?", default="", help="only these objects: s3://bucket/prefix, or a key prefix"
    )
    failures.add_argument("--json", action="store_true", help="one JSON object per line, with the whole record")
    failures.add_argument("--max", type=int, default=1000, help="list at most this many (default 1000)")

    redrive = operator_command(
        sub,
        "redrive",
        "replay DLQ records through the function; delete each once accepted",
        "python -m facepipe redrive --dry-run; python -m facepipe redrive --max 100 --rate 5",
        cmd_redrive,
    )
    redrive.add_argument("--dry-run", action="store_true", help="show what would be replayed; change nothing")
    redrive.add_argument("--max", type=int, default=None, help="replay at most N records")
    redrive.add_argument("--rate", type=float, default=5.0, help="replays per second (default 5)")
