"""python -m facepipe: local mode (demo, local up) and the operator commands."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import textwrap
import threading
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "lambdas") not in sys.path:  # the function's package, exactly as deployed
    sys.path.insert(0, str(ROOT / "lambdas"))


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
    from detect_faces.results import ResultsStore

    from . import samples
    from .annotate import annotate, save
    from .local import LocalSettings, running

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    demo = samples.demo_set()
    print("Starting local AWS (moto), the DetectFaces emulator (CenterFace) and the local Lambda runtime...")
    with running(LocalSettings(concurrency=args.concurrency)) as pipeline:
        s3 = pipeline.client("s3")
        print(f"Uploading {len(demo)} files to s3://{pipeline.bucket}/ ...")
        for sample in demo:
            s3.put_object(Bucket=pipeline.bucket, Key=sample.key, Body=sample.body)
        # one s3:TestEvent (sent when notifications were configured) plus one event per upload
        if not pipeline.wait_for_events(len(demo) + 1, timeout=args.timeout):
            raise CliError(f"not every upload reached an outcome within {args.timeout:.0f}s")
        store = ResultsStore(pipeline.client("dynamodb"), pipeline.table)
        rows, failures = [], 0
        for sample in demo:
            result = store.get(pipeline.bucket, sample.key)
            status = result.status if result else "MISSING"
            if result and result.status == "DETECTED":
                got = f"faces:{result.face_count}"
            elif result and result.reason:
                got = f"{status.lower()}:{result.reason.split(':')[0]}"
            else:
                got = status
            ok = got == sample.expected
            failures += not ok
            annotated = ""
            if result and result.faces:
                name = re.sub(r"[^A-Za-z0-9._-]+", "_", sample.key.split("/")[-1].rsplit(".", 1)[0]) + ".png"
                save(annotate(sample.body, result.faces), str(out / name))
                annotated = name
            reason = (result.reason or "") if result else ""
            faces = str(result.face_count) if result and result.face_count is not None else "-"
            rows.append([sample.key, status, faces, sample.expected, "ok" if ok else "UNEXPECTED",
                         textwrap.shorten(reason, 60), annotated])  # fmt: skip
        print()
        print(_table(rows, ["key", "status", "faces", "expected", "check", "reason", "annotated"]))
        stats = pipeline.runtime.stats if pipeline.runtime else None
        emu = pipeline.emulator.stats if pipeline.emulator else None
        print()
        if stats and emu:
            print(f"Lambda invocations: {stats.invocations} (errors {stats.errors}, sent to DLQ {stats.dead_lettered});"
                  f" DetectFaces calls: {emu.requests}, faces found: {emu.faces}")  # fmt: skip
        print("DetectFaces answers come from the local emulator: BoundingBox, Confidence, five landmarks, Pose and")
        print("Quality from a real detector (CenterFace); ALL-only attributes (age, emotions, ...) are not emulated.")
        print(f"Annotated images: {out}")
    if failures:
        print(f"{failures} outcome(s) differ from what the demo expects", file=sys.stderr)
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
        concurrency=args.concurrency, tps=args.tps, face_attributes=args.attributes, log_level=args.log_level
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running(settings, port=args.port, on_result=report) as pipeline:
        exports = " ".join(f"{k}={v}" for k, v in pipeline.env.items() if k.startswith("AWS_ENDPOINT"))
        print(textwrap.dedent(f"""\
            facepipe local stack is up (Ctrl-C to stop)
              AWS endpoint (S3, DynamoDB, SQS): {pipeline.endpoint}
              DetectFaces emulator:             {pipeline.rekognition_endpoint}
              bucket:      {pipeline.bucket}
              table:       {pipeline.table}
              DLQ:         {pipeline.dlq_url}

            Drop a photo in from another shell (fake credentials; nothing leaves this machine):
              AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION={pipeline.settings.region} \\
                aws --endpoint-url {pipeline.endpoint} s3 cp photo.jpg s3://{pipeline.bucket}/
            or with boto3: boto3.client("s3", endpoint_url="{pipeline.endpoint}", ...).upload_file(...)
            or: {exports} python -m facepipe --local results
            """), flush=True)  # fmt: skip
        os.environ["FACEPIPE_LOCAL_ENDPOINT"] = pipeline.endpoint
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print("stopped")
    return 0


# ---- parser -----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m facepipe",
        description="facepipe: S3 uploads -> Rekognition DetectFaces -> DynamoDB, locally or on AWS.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m facepipe demo\n  python -m facepipe local up --port 4566",
    )
    sub = parser.add_subparsers(dest="command", required=True)

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
        epilog="example:\n  python -m facepipe local up --port 4566 --tps 5",
    )
    up.add_argument("--port", type=int, default=4566, help="port of the embedded AWS endpoint (default 4566)")
    up.add_argument("--concurrency", type=int, default=4, help="local Lambda concurrency (default 4)")
    up.add_argument("--tps", type=float, default=None, help="DetectFaces quota to emulate (default: none)")
    up.add_argument("--attributes", choices=["DEFAULT", "ALL"], default="DEFAULT", help="FACE_ATTRIBUTES")
    up.add_argument("--log-level", default="WARNING", help="the function's LOG_LEVEL (default WARNING)")
    up.set_defaults(func=cmd_local_up)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Powertools warns on every invocation without metrics (skipped test events); nothing to act on locally.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
