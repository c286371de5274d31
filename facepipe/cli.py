"""python -m facepipe: local mode (demo, local up) and the operator commands."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import textwrap
import threading
import warnings
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from facepipe.ops import OpsError


class CliError(Exception):
    """A problem the user can fix: printed as one line, exit status 1."""


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


# ---- demo -----------------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .local import demo

    out = Path(args.out).resolve()
    try:
        run = demo.run(out, args.concurrency, args.timeout)
    except demo.DemoTimeout as exc:
        raise CliError(str(exc)) from None
    print()
    print(_table(run.rows, demo.HEADERS))
    print()
    if run.summary:
        print(run.summary)
    print("DetectFaces answers come from the local emulator: BoundingBox, Confidence, five landmarks, Pose and")
    print("Quality from a real detector (CenterFace); ALL-only attributes (age, emotions, ...) are not emulated.")
    print(f"Annotated images: {out}")
    if run.unexpected:
        print(f"{run.unexpected} outcome(s) differ from what the demo expects", file=sys.stderr)
        return 1
    return 0


# ---- local up ---------------------------------------------------------------------------------------------


def cmd_local_up(args: argparse.Namespace) -> int:
    from .local import LocalSettings, running

    def report(event: dict[str, Any], result: Any, error: BaseException | None) -> None:
        if error is not None:
            print(f"  ! invocation failed: {type(error).__name__}: {error} (Lambda retries, then the DLQ)", flush=True)
            return
        for record in (result or {}).get("records", []):
            detail = f"{record.get('faces')} face(s)" if "faces" in record else record.get("reason", "")
            print(f"  {record['outcome']:<13} {record['key']}  {detail}", flush=True)

    settings = LocalSettings(
        concurrency=args.concurrency,
        tps=args.tps,
        face_attributes=args.attributes,
        log_level=args.log_level,
        notifications=args.notifications,
        existing_bucket=args.existing_bucket,
        key_prefix=args.key_prefix if args.key_prefix is not None else ("uploads/" if args.existing_bucket else ""),
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started in the background, where SIGINT is ignored
        signal.signal(signum, lambda *_: stop.set())
    from .local.centerface import FixedDetector

    detector = FixedDetector() if args.fast_detector else None
    from .local.attach import AttachError

    try:
        pipeline_context = running(settings, port=args.port, on_result=report, detector=detector)
        pipeline = pipeline_context.__enter__()
    except AttachError as exc:
        print(f"facepipe: {exc}", file=sys.stderr)
        if settings.notifications == "s3":
            print(
                "  -> S3 refuses overlapping entries: use --notifications eventbridge, or --key-prefix", file=sys.stderr
            )
        return 1
    with contextlib.ExitStack() as cleanup:
        cleanup.push(pipeline_context.__exit__)
        if settings.existing_bucket:
            cleanup.callback(pipeline.detach)  # as `cdk destroy` would: the other consumer keeps its entry
        watched = f"s3://{pipeline.bucket}/{settings.key_prefix}"
        existing = (
            f"  (existing, unversioned; its other consumer, SQS queue {pipeline.foreign_queue_url.rsplit('/', 1)[-1]},"
            " keeps its events)"
            if settings.existing_bucket
            else ""
        )
        print(textwrap.dedent(f"""\
            facepipe local stack is up (Ctrl-C to stop)
              AWS endpoint (S3, DynamoDB, SQS, EventBridge): {pipeline.endpoint}
              DetectFaces emulator:             {pipeline.rekognition_endpoint}
              Lambda Invoke API (the function): {pipeline.lambda_endpoint}
              watching:    {watched} via {settings.notifications}{existing}
              table:       {pipeline.table}
              DLQ:         {pipeline.dlq_url}

            Drop a photo in from another shell (fake credentials; nothing leaves this machine):
              AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={pipeline.settings.region} \\
                aws --endpoint-url {pipeline.endpoint} s3 cp photo.jpg {watched}
            or with boto3: boto3.client("s3", endpoint_url="{pipeline.endpoint}", ...).upload_file(...)
            Operate it like a deployed stack: python -m facepipe results --local  (failures, redrive, backfill, show)
            """), flush=True)  # fmt: skip
        from .local import state

        state.write(pipeline.state())
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            state.clear()
    print("stopped")
    return 0


# ---- operator commands ---------------------------------------------------------------------------------------


def _target(args: argparse.Namespace) -> Any:
    from . import ops

    if args.local:
        return ops.local_target()
    return ops.stack_target(args.stack)


def _progress(total: int | None, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="obj", file=sys.stderr, disable=not sys.stderr.isatty())


def cmd_results(args: argparse.Namespace) -> int:
    import json

    from . import ops

    target = _target(args)
    rows = []
    for result in ops.list_results(target, args.where, include_deleted=args.all, with_faces=args.json):
        if args.json:
            print(json.dumps(ops.result_json(result)))
        else:
            faces = "-" if result.face_count is None or result.status != "DETECTED" else str(result.face_count)
            rows.append([result.key, result.status, faces, textwrap.shorten(result.reason or "", 70),
                         result.finished_at or result.event_time or ""])  # fmt: skip
    if not args.json:
        print(_table(rows, ["key", "status", "faces", "reason", "time"]) if rows else "no results")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from . import ops

    path, result = ops.show(_target(args), args.uri, args.output)
    print(
        f"{path}: {result.face_count} face(s) drawn on {args.uri}"
        + (f" (version {result.version_id})" if result.version_id else "")
    )
    return 0


def cmd_failures(args: argparse.Namespace) -> int:
    import json

    from . import ops
    from .ops.failures import RAW_EXCERPT

    failures = ops.list_failures(_target(args), limit=args.max, where=args.where)
    if args.json:
        for failure in failures:
            unread = {} if failure.body is not None else {"raw": failure.raw[:RAW_EXCERPT]}
            print(json.dumps({**failure.summary(), "record": failure.body, **unread}))
        return 0
    rows = []
    for f in (x.summary() for x in failures):
        # A message can hold anything: each cell is one line of text, cut to a width (the key whole).
        message = f"[{f['problem']}] {f['error_message']}" if f["problem"] else f["error_message"]
        rows.append([_cell(f["key"]), _cell(f["version_id"] or "-", 40), _cell(f["error_type"], 40),
                     _cell(textwrap.shorten(message, 80 if f["problem"] else 60)), _cell(f["attempts"] or "-", 10),
                     _cell(f["time"], 30)])  # fmt: skip
    print(_table(rows, ["key", "version", "errorType", "message", "attempts", "time"]) if rows else "DLQ is empty")
    return 0


def _cell(value: object, width: int | None = None) -> str:
    """A table cell of `failures`: text on one line (control characters escaped), cut to `width`."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in str(value))
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def cmd_redrive(args: argparse.Namespace) -> int:
    from . import ops

    target = _target(args)
    with _progress(args.max, "redrive") as bar:
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
        print(f"replayed {report.replayed} record(s) through {target.function_name}; deleted them from the DLQ")
    if report.skipped:
        print(f"{report.skipped} message(s) cannot be replayed and were left in the DLQ:")
        for reason, count in sorted(report.cannot_replay.items(), key=lambda item: (-item[1], item[0])):
            print(f"  {count:>6}  {_cell(reason)}")
        print("  (python -m facepipe failures lists each with its reason)")
    if report.new:
        print(f"{report.new} message(s) arrived after this run began (its own replays' failures among them); left")
    if report.hidden:
        print(f"{report.hidden} message(s) could not be made visible again; they reappear within 5 minutes")
    print(f"left in the DLQ: {report.left} (run {report.run_id})")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from . import ops

    target = _target(args)
    if args.status:
        return _backfill_status(target, args)
    if not args.uri:
        raise OpsError("backfill needs s3://bucket/prefix (or --status JOB_ID)")
    if args.engine == "batch-operations":
        return _backfill_job(target, args)
    with _progress(None, "backfill") as bar:
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


def _backfill_job(target: Any, args: argparse.Namespace) -> int:
    from .ops import backlog

    if args.local:  # the job emulated against the local stack, the whole path on this machine
        result = backlog.run_locally(target, args.uri, concurrency=args.concurrency, dry_run=args.dry_run)
        if args.dry_run:
            for task in result:
                print(f"would process s3://{task.bucket}/{task.key}")
            print(f"{len(result)} task(s) in the job it would run")
            return 0
        print(f"local job {result.job_id}: {result.total} task(s), {result.succeeded} succeeded, {result.failed} failed"
              f" ({result.retries} TemporaryFailure retried)")  # fmt: skip
        print(f"completion report: {result.report_uri}")
        return 0 if result.failed == 0 else 1
    submitted = backlog.submit(
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
        print(backlog.request_json(submitted.request))
        return 0
    print(f"created S3 Batch Operations job {submitted.job_id}")
    if args.confirm:
        print(f"follow it: python -m facepipe backfill --status {submitted.job_id}")
    else:
        print("it waits for confirmation; confirm and follow it with:")
        print(f"  python -m facepipe backfill --status {submitted.job_id} --confirm")
    return 0


def _backfill_status(target: Any, args: argparse.Namespace) -> int:
    from .ops import backlog

    if args.confirm:  # a job created without --confirm waits in Suspended until someone sets it Ready
        print(backlog.confirm(target, args.status))
    progress = backlog.status(target, args.status, watch=not args.once)
    # a script can tell: a job that failed, was cancelled, or completed with failed tasks is not a success
    return 1 if progress.status in ("Failed", "Cancelled") or progress.failed else 0


# ---- parser -----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m facepipe",
        description="facepipe: S3 uploads -> Rekognition DetectFaces -> DynamoDB, locally or on AWS.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m facepipe demo\n  python -m facepipe local up --port 4566\n"
        "  python -m facepipe results --stack Facepipe\n  python -m facepipe failures --local",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_local_mode(sub)
    _add_operator_commands(sub)
    _add_doctor(sub)
    return parser


def _add_local_mode(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the pipeline locally on sample photos and print the results",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m facepipe demo --out /tmp/faces",
    )
    demo.add_argument("--out", default="facepipe-demo-output", help="folder for annotated images")
    demo.add_argument("--concurrency", type=int, default=4, help="local Lambda concurrency (default 4)")
    demo.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for every outcome")
    demo.set_defaults(func=cmd_demo)

    local = sub.add_parser("local", help="the local stack")
    local_sub = local.add_subparsers(dest="local_command", required=True)
    up = local_sub.add_parser(
        "up",
        help="run the local stack in the foreground until interrupted",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m facepipe local up --port 4566 --tps 5\n"
        "  python -m facepipe local up --notifications eventbridge\n"
        "  python -m facepipe local up --existing-bucket my-photos --key-prefix uploads/",
    )
    up.add_argument("--port", type=int, default=4566, help="port of the embedded AWS endpoint (default 4566)")
    up.add_argument("--concurrency", type=int, default=4, help="local Lambda concurrency (default 4)")
    up.add_argument("--tps", type=float, default=None, help="DetectFaces quota to emulate (default: none)")
    up.add_argument("--attributes", choices=["DEFAULT", "ALL"], default="DEFAULT", help="FACE_ATTRIBUTES")
    up.add_argument("--log-level", default="WARNING", help="the function's LOG_LEVEL (default WARNING)")
    up.add_argument(
        "--notifications",
        choices=["s3", "eventbridge"],
        default="s3",
        help="how S3 events reach the function, as facepipe:notifications (default s3)",
    )
    up.add_argument(
        "--existing-bucket",
        metavar="NAME",
        help="attach to a bucket that is there first (unversioned, with another consumer's notification) instead "
        "of creating the uploads bucket; detached again on exit",
    )
    up.add_argument(
        "--key-prefix",
        default=None,
        help="watch only keys under this prefix, as facepipe:keyPrefixes (default: every key; uploads/ with "
        "--existing-bucket)",
    )
    up.add_argument(
        "--fast-detector",
        action="store_true",
        help="one fixed face per image, instantly: rehearse quotas without the detector's cost",
    )
    up.set_defaults(func=cmd_local_up)


def cmd_doctor(args: argparse.Namespace) -> int:
    import json

    import boto3

    from .ops import doctor

    session = boto3.session.Session()
    from detect_faces.contract import Delivery

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


def _add_doctor(sub: Any) -> None:
    from detect_faces.contract import ASYNC_MAX_EVENT_AGE_SECONDS, ASYNC_RETRY_ATTEMPTS

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
    doctor.add_argument("--notifications", choices=["s3", "eventbridge"], default="s3", help="facepipe:notifications")
    doctor.add_argument("--kms-key-arn", action="append", default=[], help="facepipe:kmsKeyArns (repeat)")
    doctor.add_argument(
        "--smoke", action="store_true", help="with --stack: one sample photo through the pipeline, then deleted"
    )
    doctor.add_argument("--json", action="store_true", help="the checks as one JSON list")
    doctor.set_defaults(func=cmd_doctor)


def _add_operator_commands(sub: Any) -> None:
    target = argparse.ArgumentParser(add_help=False)
    where = target.add_mutually_exclusive_group()
    where.add_argument(
        "--stack", default="Facepipe", help="deployed stack name (default Facepipe; AWS env decides region)"
    )
    where.add_argument("--local", action="store_true", help="the running `python -m facepipe local up` stack")

    def command(name: str, help: str, example: str, func: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help,
            description=help,
            parents=[target],
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=f"example:\n  {example}",
        )
        p.set_defaults(func=func)
        return p

    results = command(
        "results",
        "one row per image: key, status, faces, reason, time",
        "python -m facepipe results photos/ --local",
        cmd_results,
    )
    results.add_argument(
        "where", nargs="?", default="", help="s3://bucket/prefix, or a key prefix (in every watched bucket)"
    )
    results.add_argument("--json", action="store_true", help="one JSON object per line, with every FaceDetail")
    results.add_argument("--all", action="store_true", help="include deleted images' tombstones")

    show = command(
        "show",
        "draw an image's stored boxes and landmarks into a PNG/JPEG",
        "python -m facepipe show s3://my-bucket/photos/team.jpg -o team.png",
        cmd_show,
    )
    show.add_argument("uri", help="s3://bucket/key")
    show.add_argument("-o", "--output", help="output file (.png or .jpg; default <name>.annotated.png)")

    failures = command(
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

    redrive = command(
        "redrive",
        "replay DLQ records through the function; delete each once accepted",
        "python -m facepipe redrive --dry-run; python -m facepipe redrive --max 100 --rate 5",
        cmd_redrive,
    )
    redrive.add_argument("--dry-run", action="store_true", help="show what would be replayed; change nothing")
    redrive.add_argument("--max", type=int, default=None, help="replay at most N records")
    redrive.add_argument("--rate", type=float, default=5.0, help="replays per second (default 5)")

    backfill = command(
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
        choices=["local", "batch-operations"],
        default="local",
        help="local: invoke the function from here at --rate (a few thousand objects); batch-operations: an S3 "
        "Batch Operations job runs the backlog function (millions; see docs/OPERATIONS.md). Default local",
    )
    backfill.add_argument("--status", metavar="JOB_ID", help="show a Batch Operations job's progress until it ends")
    backfill.add_argument("--once", action="store_true", help="with --status: show the progress once, do not follow")
    backfill.add_argument(
        "--confirm",
        action="store_true",
        help="batch-operations: create the job ready to run (else it waits); with --status: confirm that job",
    )
    backfill.add_argument(
        "--priority", type=int, default=10, help="batch-operations: the job's priority (higher runs first; 10)"
    )
    backfill.add_argument(
        "--manifest",
        choices=["generated", "csv"],
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
