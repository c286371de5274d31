"""`backfill`: the objects that were in the bucket before the stack, by one of two engines, named by who runs the
work: `invoke` (this machine invokes the function once per object, at --rate) or `batch-operations` (an S3 Batch
Operations job runs the backlog function; on the local stack the job is emulated here). `--status` follows a job,
drawn here as a progress bar."""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, get_args

from facepipe import ops
from facepipe.ops import Target, TargetKind, batch_operations
from facepipe.ops.batch_operations import JobProgress
from facepipe.ops.batch_operations.plan import DEFAULT_PRIORITY, ManifestKind

from .base import Subcommands, operator_command, target_of
from .format import progress_bar

INVOKE, BATCH_OPERATIONS = "invoke", "batch-operations"
ENGINES = (INVOKE, BATCH_OPERATIONS)
# Spellings that still work, with a line on stderr: `local` was `invoke`, before `--local` (the local stack) and
# the engine (who invokes the function) stopped sharing a word.
DEPRECATED_ENGINES = {"local": INVOKE}


def engine(value: str) -> str:
    """The --engine value, a deprecated spelling replaced by its name (and a line on stderr saying so)."""
    if value in DEPRECATED_ENGINES:
        print(
            f"facepipe: --engine {value} is deprecated; use --engine {DEPRECATED_ENGINES[value]} (the same engine)",
            file=sys.stderr,
        )
        return DEPRECATED_ENGINES[value]
    return value


def cmd_backfill(args: argparse.Namespace) -> int:
    target = target_of(args)
    if args.status:
        return _status(target, args)
    if not args.uri:
        raise ops.OpsError("backfill needs s3://bucket/prefix (or --status JOB_ID)")
    if args.engine == BATCH_OPERATIONS:
        return _local_job(target, args) if target.kind is TargetKind.LOCAL else _job(target, args)
    with progress_bar(None, "backfill") as bar:
        report = ops.backfill(
            target,
            args.uri,
            limiter=ops.RateLimiter(args.rate),
            dry_run=args.dry_run,
            start_after=args.start_after,
            progress=bar.update,
        )
    if args.dry_run:
        for key in report.planned:
            print(f"would process {key}")
        print(f"{len(report.planned)} of {report.listed} object(s) have no result and would be processed")
    else:
        print(f"{report.invoked} object(s) sent to {target.function_name}; {report.skipped_done} already had a result")
    return 0


def _local_job(target: Target, args: argparse.Namespace) -> int:
    """The job emulated against the local stack, the whole path on this machine."""
    from facepipe.local import batch_operations as local_job

    if args.dry_run:
        tasks = local_job.planned_tasks(target, args.uri)
        for task in tasks:
            print(f"would process s3://{task.bucket}/{task.key}")
        print(f"{len(tasks)} task(s) in the job it would run")
        return 0
    result = local_job.run_job(target, args.uri, concurrency=args.concurrency)
    print(f"local job {result.job_id}: {result.total} task(s), {result.succeeded} succeeded, {result.failed} failed"
          f" ({result.retries} TemporaryFailure retried)")  # fmt: skip
    print(f"completion report: {result.report_uri}")
    return 0 if result.failed == 0 else 1


def _job(target: Target, args: argparse.Namespace) -> int:
    submitted = batch_operations.submit(
        target, args.uri, priority=args.priority, confirm=args.confirm, manifest=args.manifest, dry_run=args.dry_run
    )
    if submitted.nothing_to_do:
        print("every object under the prefix already has a result: no job created")
        return 0
    if submitted.manifest is not None:
        m = submitted.manifest
        done = "would write" if args.dry_run else "wrote"
        print(f"{done} the manifest {m.uri}: {m.tasks} of {m.listed} object(s); {m.skipped} already had a result")
    if args.dry_run:
        print("the job it would create (s3control create_job):")
        print(json.dumps(submitted.request, indent=2, sort_keys=True))
        return 0
    print(f"created S3 Batch Operations job {submitted.job_id}")
    if args.confirm:
        print(f"follow it: python -m facepipe backfill --status {submitted.job_id}")
    else:
        print("it waits for confirmation; confirm and follow it with:")
        print(f"  python -m facepipe backfill --status {submitted.job_id} --confirm")
    return 0


def _status(target: Target, args: argparse.Namespace) -> int:
    if args.confirm:  # a job created without --confirm waits in Suspended until someone sets it Ready
        print(batch_operations.confirm(target, args.status, announce=print))
    drawing = ProgressDrawing(sys.stdout)
    progress = batch_operations.follow(target, args.status, until_done=not args.once, on_progress=drawing.draw)
    drawing.close(progress)
    # a script can tell: a job that failed, was cancelled, or completed with failed tasks is not a success
    return 1 if progress.status in ("Failed", "Cancelled") or progress.failed else 0


# ---- a job's progress on the terminal ------------------------------------------------------------------------


def render_progress(progress: JobProgress, width: int = 30) -> str:
    """One line: status, a text progress bar, percent and the task counts."""
    filled = round(width * progress.percent / 100)
    bar = "#" * filled + "-" * (width - filled)
    counts = f"{progress.done}/{progress.total} tasks" if progress.total else "tasks not counted yet"
    return (
        f"{progress.status:<10} [{bar}] {progress.percent:5.1f}%  {counts}: "
        f"{progress.succeeded} succeeded, {progress.failed} failed"
    )


def render_details(progress: JobProgress) -> list[str]:
    """The lines after the bar: the report's location, why the job failed or waits."""
    lines = [f"job {progress.job_id}" + (f" ({progress.description})" if progress.description else "")]
    if progress.report:
        lines.append(f"completion report: {progress.report}")
    for reason in progress.failure_reasons:
        lines.append(f"failure: {reason}")
    if progress.status == "Suspended":
        if progress.confirmation_required and not progress.suspended_cause:
            lines.append(
                f"waiting for confirmation: python -m facepipe backfill --status {progress.job_id} --confirm"
                " (it sets the job Ready, then follows it)"
            )
        elif progress.suspended_cause:
            lines.append(f"suspended: {progress.suspended_cause}")
    if progress.status_update_reason and progress.terminal and progress.status != "Complete":
        lines.append(f"reason: {progress.status_update_reason}")
    return lines


class ProgressDrawing:
    """A job's progress bar as it is followed: redrawn in place on a terminal, elsewhere a line whenever it
    changes; then, once it ends or waits, the details (`close`)."""

    def __init__(self, out: IO[str], width: int = 30) -> None:
        self.out, self.width = out, width
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self._last = ""

    def draw(self, progress: JobProgress) -> None:
        line = render_progress(progress, self.width)
        if self.tty:
            self.out.write("\r" + line.ljust(len(self._last)))
        elif line != self._last:
            self.out.write(line + "\n")
        self.out.flush()
        self._last = line

    def close(self, progress: JobProgress) -> None:
        if self.tty:
            self.out.write("\n")
        for detail in render_details(progress):
            self.out.write(detail + "\n")
        self.out.flush()


def register(sub: Subcommands) -> None:
    backfill = operator_command(
        sub,
        "backfill",
        "process objects that were in the bucket before the stack (S3 sends no event)",
        "python -m facepipe backfill s3://my-bucket/archive/ --rate 5 --dry-run\n"
        "  python -m facepipe backfill s3://my-bucket/archive/ --engine batch-operations --confirm\n"
        "  python -m facepipe backfill --status JOB_ID\n"
        "  python -m facepipe backfill s3://facepipe-uploads/ --engine batch-operations --local",
        cmd_backfill,
    )
    backfill.add_argument("uri", nargs="?", default="", help="s3://bucket/prefix")
    backfill.add_argument(
        "--engine",
        type=engine,
        choices=ENGINES,
        default=INVOKE,
        help="who runs the work. invoke: this machine invokes the function per object at --rate (a few thousand "
        "objects); batch-operations: an S3 Batch Operations job runs the backlog function (millions; see "
        "docs/OPERATIONS.md). Default invoke (`local`, its former name, still works)",
    )
    backfill.add_argument("--status", metavar="JOB_ID", help="show a Batch Operations job's progress until it ends")
    backfill.add_argument("--once", action="store_true", help="with --status: show the progress once, do not follow")
    backfill.add_argument(
        "--confirm",
        action="store_true",
        help="batch-operations: create the job ready to run (else it waits); with --status: confirm that job",
    )
    backfill.add_argument(
        "--priority",
        type=int,
        default=DEFAULT_PRIORITY,
        help=f"batch-operations: the job's priority (higher runs first; {DEFAULT_PRIORITY})",
    )
    backfill.add_argument(
        "--manifest",
        choices=get_args(ManifestKind),
        default="generated",
        help="batch-operations: generated (S3 lists the prefix; done objects are skipped by the function) or csv "
        "(listed here, objects with results left out)",
    )
    backfill.add_argument(
        "--concurrency", type=int, default=4, help="batch-operations --local: tasks at a time (default 4)"
    )
    backfill.add_argument(
        "--rate",
        type=float,
        default=5.0,
        help="invocations per second; keep it under your DetectFaces TPS quota (default 5)",
    )
    backfill.add_argument("--dry-run", action="store_true", help="list what would be processed; change nothing")
    backfill.add_argument(
        "--start-after", default="", help="resume after this key (objects with results are skipped anyway)"
    )
