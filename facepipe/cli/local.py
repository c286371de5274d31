"""Local mode's commands: `demo` (the sample photos through the whole pipeline, checked) and `local up` (a local
stack that keeps running until interrupted, for the operator commands' `--local`). docs/LOCAL_MODE.md."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

from detect_faces.contract import FACE_ATTRIBUTE_CHOICES, REDACTION_MODES, REDACTION_OFF, Delivery
from detect_faces.settings import Settings

from .base import CliError, Subcommands
from .format import table


def cmd_demo(args: argparse.Namespace) -> int:
    from facepipe.local import demo

    out = Path(args.out).resolve()
    try:
        run = demo.run(out, args.concurrency, args.timeout, redaction=args.redaction)
    except demo.DemoTimeout as exc:
        raise CliError(str(exc)) from None
    print()
    print(table(run.rows, demo.HEADERS))
    print()
    if run.summary:
        print(run.summary)
    print("DetectFaces answers come from the local emulator: BoundingBox, Confidence, five landmarks, Pose and")
    print("Quality from a real detector (CenterFace); ALL-only attributes (age, emotions, ...) are not emulated.")
    print(f"Annotated images: {out}")
    if run.redacted:
        print(
            f"Redacted copies ({args.redaction}, every detected face hidden; *.redacted.*): {out} "
            f"({len(run.redacted)} files, as the redaction function wrote them to the local redacted bucket)"
        )
    if run.unexpected:
        print(f"{run.unexpected} outcome(s) differ from what the demo expects", file=sys.stderr)
        return 1
    return 0


def _report(event: dict[str, Any], result: Any, error: BaseException | None) -> None:
    """Each invocation's outcome as `local up` prints it."""
    if error is not None:
        print(f"  ! invocation failed: {type(error).__name__}: {error} (Lambda retries, then the DLQ)", flush=True)
        return
    for record in (result or {}).get("records", []):
        detail = f"{record.get('faces')} face(s)" if "faces" in record else record.get("reason", "")
        print(f"  {record['outcome']:<13} {record['key']}  {detail}", flush=True)


def _report_redaction(event: dict[str, Any], result: Any, error: BaseException | None) -> None:
    """Each invocation of the redaction function as `local up` prints it."""
    detail = event.get("detail") if isinstance(event, dict) else None
    where = f"{detail.get('bucket')}/{detail.get('key')}" if isinstance(detail, dict) else "?"
    if error is not None:
        print(
            f"  ! redaction failed: {where}: {type(error).__name__}: {error} (Lambda retries, then the DLQ)", flush=True
        )
        return
    action = (result or {}).get("action", "?")
    reason = (result or {}).get("reason", "")
    print(f"  redaction {action:<13} {where}  {reason}".rstrip(), flush=True)


def cmd_local_up(args: argparse.Namespace) -> int:
    from facepipe.local import LocalSettings, running, state
    from facepipe.local.attach import AttachError
    from facepipe.local.centerface import FixedDetector

    settings = LocalSettings(
        concurrency=args.concurrency,
        tps=args.tps,
        face_attributes=args.attributes,
        log_level=args.log_level,
        notifications=args.notifications,
        existing_bucket=args.existing_bucket,
        key_prefix=args.key_prefix if args.key_prefix is not None else ("uploads/" if args.existing_bucket else ""),
        redaction=args.redaction,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started in the background, where SIGINT is ignored
        signal.signal(signum, lambda *_: stop.set())
    detector = FixedDetector() if args.fast_detector else None
    with contextlib.ExitStack() as cleanup:
        try:
            pipeline = cleanup.enter_context(
                running(
                    settings,
                    port=args.port,
                    on_result=_report,
                    on_redaction_result=_report_redaction,
                    detector=detector,
                )
            )
        except AttachError as exc:
            print(f"facepipe: {exc}", file=sys.stderr)
            if settings.notifications == Delivery.S3:
                print(
                    "  -> S3 refuses overlapping entries: use --notifications eventbridge, or --key-prefix",
                    file=sys.stderr,
                )
            return 1
        if settings.existing_bucket:
            cleanup.callback(pipeline.detach)  # as `cdk destroy` would: the other consumer keeps its entry
        watched = f"s3://{pipeline.bucket}/{settings.key_prefix}"
        existing = (
            f"  (existing, unversioned; its other consumer, SQS queue {pipeline.foreign_queue_url.rsplit('/', 1)[-1]},"
            " keeps its events)"
            if settings.existing_bucket
            else ""
        )
        redacted = (
            f"{settings.redaction}: copies in s3://{pipeline.redacted_bucket}/<bucket>/<key>"
            if pipeline.redacted_bucket
            else "off (--redaction blur|pixelate|fill)"
        )
        print(textwrap.dedent(f"""\
            facepipe local stack is up (Ctrl-C to stop)
              AWS endpoint (S3, DynamoDB, SQS, EventBridge): {pipeline.endpoint}
              DetectFaces emulator:             {pipeline.rekognition_endpoint}
              Lambda Invoke API (the function): {pipeline.lambda_endpoint}
              watching:    {watched} via {settings.notifications}{existing}
              table:       {pipeline.table}
              DLQ:         {pipeline.dlq_url}
              redaction:   {redacted}

            Drop a photo in from another shell (fake credentials; nothing leaves this machine):
              AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={pipeline.settings.region} \\
                aws --endpoint-url {pipeline.endpoint} s3 cp photo.jpg {watched}
            or with boto3: boto3.client("s3", endpoint_url="{pipeline.endpoint}", ...).upload_file(...)
            Operate it like a deployed stack: python -m facepipe results --local  (failures, redrive, backfill, show)
            """), flush=True)  # fmt: skip
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


def register(sub: Subcommands) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the pipeline locally on sample photos and print the results",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m facepipe demo --out /tmp/faces",
    )
    demo.add_argument("--out", default="facepipe-demo-output", help="folder for annotated images")
    demo.add_argument("--concurrency", type=int, default=4, help="local Lambda concurrency (default 4)")
    demo.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for every outcome")
    demo.add_argument(
        "--redaction",
        choices=(REDACTION_OFF, *REDACTION_MODES),
        default="blur",
        help="also run the redaction function and save each photo's redacted copy beside its annotated image "
        "(default blur; off: none)",
    )
    demo.set_defaults(func=cmd_demo)

    local = sub.add_parser("local", help="the local stack")
    local_sub = local.add_subparsers(dest="local_command", required=True)
    up = local_sub.add_parser(
        "up",
        help="run the local stack in the foreground until interrupted",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m facepipe local up --port 4566 --tps 5\n"
        "  python -m facepipe local up --notifications eventbridge\n"
        "  python -m facepipe local up --redaction blur\n"
        "  python -m facepipe local up --existing-bucket my-photos --key-prefix uploads/",
    )
    up.add_argument("--port", type=int, default=4566, help="port of the embedded AWS endpoint (default 4566)")
    up.add_argument("--concurrency", type=int, default=4, help="local Lambda concurrency (default 4)")
    up.add_argument("--tps", type=float, default=None, help="DetectFaces quota to emulate (default: none)")
    up.add_argument(
        "--attributes", choices=FACE_ATTRIBUTE_CHOICES, default=Settings.face_attributes, help="FACE_ATTRIBUTES"
    )
    up.add_argument("--log-level", default="WARNING", help="the function's LOG_LEVEL (default WARNING)")
    up.add_argument(
        "--notifications",
        choices=[d.value for d in Delivery],
        default=Delivery.S3.value,
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
    up.add_argument(
        "--redaction",
        choices=(REDACTION_OFF, *REDACTION_MODES),
        default=REDACTION_OFF,
        help="redacted copies of every analysed image, faces hidden this way, as facepipe:redaction (default off)",
    )
    up.set_defaults(func=cmd_local_up)
