"""The demo: the sample photos through the whole local pipeline, each outcome checked against what it should be;
with redaction on (the default), each analysed photo's redacted copy saved beside its annotated image."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from detect_faces.contract import REDACTION_OFF, Status
from detect_faces.results import ResultsStore
from facepipe.common import photos
from facepipe.common.annotate import annotate, save

from .pipeline import LocalSettings, running


class DemoTimeout(Exception):
    """Not every upload reached an outcome in time."""


@dataclass
class DemoRun:
    rows: list[list[str]] = field(default_factory=list)  # HEADERS
    unexpected: int = 0
    summary: str = ""
    redacted: list[Path] = field(default_factory=list)  # the redacted copies saved, beside the annotated images


HEADERS = ["key", "status", "faces", "expected", "check", "reason", "annotated", "redacted"]
DEFAULT_REDACTION = "blur"  # `make demo` shows the redacted copies too


def _name(key: str) -> str:
    """A file name for a sample's key, without its extension: `photos/Group Shot.PNG` -> `Group_Shot`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key.split("/")[-1].rsplit(".", 1)[0])


def run(
    out: Path,
    concurrency: int,
    timeout: float,
    announce: Callable[[str], None] = print,
    redaction: str = DEFAULT_REDACTION,
) -> DemoRun:
    from redaction.copies import copy_key

    out.mkdir(parents=True, exist_ok=True)
    demo = photos.demo_set()
    announce(
        "Starting local AWS (moto), the DetectFaces emulator (CenterFace) and the local Lambda runtime"
        + (f" (and the redaction function, {redaction})..." if redaction != REDACTION_OFF else "...")
    )
    report = DemoRun()
    with running(LocalSettings(concurrency=concurrency, redaction=redaction)) as pipeline:
        s3 = pipeline.client("s3")
        announce(f"Uploading {len(demo)} files to s3://{pipeline.bucket}/ ...")
        for sample in demo:
            s3.put_object(Bucket=pipeline.bucket, Key=sample.key, Body=sample.body)
        # one s3:TestEvent (sent when notifications were configured) plus one event per upload
        if not pipeline.wait_for_events(len(demo) + 1, timeout=timeout):
            raise DemoTimeout(f"not every upload reached an outcome within {timeout:.0f}s")
        store = ResultsStore(pipeline.client("dynamodb"), pipeline.table)
        for sample in demo:
            result = store.get(pipeline.bucket, sample.key)
            status = result.status if result else "MISSING"
            if result and result.status == Status.DETECTED:
                got = f"faces:{result.face_count}"
            elif result and result.reason:
                got = f"{status.lower()}:{result.reason.split(':')[0]}"
            else:
                got = status
            ok = got == sample.expected
            report.unexpected += not ok
            annotated = ""
            if result and result.faces:
                name = _name(sample.key) + ".png"
                save(annotate(sample.body, result.faces), str(out / name))
                annotated = name
            redacted = ""
            if pipeline.redacted_bucket and result and result.status == Status.DETECTED:
                # every analysed image has its copy (one with no face too): in its own format, as the function wrote it
                copy = s3.get_object(Bucket=pipeline.redacted_bucket, Key=copy_key(pipeline.bucket, sample.key))
                suffix = {"image/png": ".png"}.get(copy.get("ContentType", ""), ".jpg")
                redacted = f"{_name(sample.key)}.redacted{suffix}"
                (out / redacted).write_bytes(copy["Body"].read())
                report.redacted.append(out / redacted)
            reason = (result.reason or "") if result else ""
            faces = str(result.face_count) if result and result.face_count is not None else "-"
            report.rows.append([sample.key, status, faces, sample.expected, "ok" if ok else "UNEXPECTED",
                                textwrap.shorten(reason, 60), annotated, redacted])  # fmt: skip
        stats = pipeline.runtime.stats if pipeline.runtime else None
        emu = pipeline.emulator.stats if pipeline.emulator else None
        if stats and emu:
            report.summary = (
                f"Lambda invocations: {stats.invocations} (errors {stats.errors}, sent to DLQ {stats.dead_lettered});"
                f" DetectFaces calls: {emu.requests}, faces found: {emu.faces}"
            )
    return report
