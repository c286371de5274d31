"""`backfill --engine batch-operations --local`: a backlog drained end to end on this machine, as an S3 Batch
Operations job would drain it: the backlog function over the objects without results, TemporaryFailure retried
later, a completion report in Batch Operations' format in the local reports bucket."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import pytest

import facepipe.local
from facepipe import ops
from facepipe.cli import main
from facepipe.common import photos
from facepipe.local import LOCAL_FUNCTION
from facepipe.local import aws as local_aws
from facepipe.local import batch_operations as local_job
from facepipe.local.centerface import CenterFaceDetector
from facepipe.local.emulator import RekognitionError
from tests.helpers import Local, start_local

pytestmark = pytest.mark.e2e

ARCHIVE = ("astronaut.jpg", "coffee.jpg", "grace_hopper.jpg", "camera.jpg")


def test_a_backlog_is_drained_by_a_local_batch_operations_job(
    detector: CenterFaceDetector, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    throttled: list[str] = []

    def fault(request: dict[str, Any]) -> RekognitionError | None:
        name = request["Image"]["S3Object"]["Name"]
        # twice: the backlog function's own short retry (2 attempts) gives up, answers TemporaryFailure, and the
        # job retries the task later
        if name == "archive/coffee.jpg" and throttled.count(name) < 2:
            throttled.append(name)
            return RekognitionError("ThrottlingException", "Rate exceeded")
        return None

    pipeline = start_local(detector, fault=fault)
    try:
        local = Local(pipeline)
        local.upload("archive/done.jpg", photos.photo("astronaut.jpg"))  # analysed live, before the backlog
        local.settle()
        assert pipeline.runtime is not None and pipeline.emulator is not None
        # The backlog: objects S3 sent no event for (they were there before the stack)
        pipeline.runtime.pause()
        time.sleep(1.5)  # a receive already waiting (long poll, 1 s) would still take the next upload's event
        for name in ARCHIVE:
            local.s3.put_object(Bucket=pipeline.bucket, Key=f"archive/{name}", Body=photos.photo(name))
        local.s3.put_object(Bucket=pipeline.bucket, Key="archive/notes.txt", Body=b"not an image")
        local.sqs.purge_queue(QueueUrl=pipeline.notifications_url)
        pipeline.runtime.resume()
        calls_before = local.detect_calls

        target = ops.Target(
            pipeline.bucket, pipeline.table, pipeline.dlq_url, LOCAL_FUNCTION, client_for=pipeline.client,
            description="local stack", kind=ops.TargetKind.LOCAL, reports_bucket=local_aws.LOCAL_REPORTS,
        )  # fmt: skip
        monkeypatch.setattr(facepipe.local, "local_target", lambda: target)
        assert main(["backfill", f"s3://{pipeline.bucket}/archive/", "--engine", "batch-operations", "--local",
                     "--dry-run"]) == 0  # fmt: skip
        planned = capsys.readouterr().out
        assert "5 task(s) in the job it would run" in planned and "archive/done.jpg" not in planned

        report = local_job.run_job(target, f"s3://{pipeline.bucket}/archive/", concurrency=2, sleep=lambda s: None)

        assert (report.total, report.succeeded, report.failed, report.retries) == (5, 4, 1, 1)
        for name in ARCHIVE:
            assert local.result(f"archive/{name}").status == "DETECTED"
        assert local.result("archive/notes.txt").status == "REJECTED"
        # each photo analysed once, the throttled one 3 times (2 throttled), the text file never, done.jpg not again
        assert local.detect_calls - calls_before == len(ARCHIVE) + 2
        rows = []
        for key in report.report_keys:
            body = local.s3.get_object(Bucket=local_aws.LOCAL_REPORTS, Key=key)["Body"].read().decode()
            rows += list(csv.reader(io.StringIO(body)))
        by_key = {row[1]: row for row in rows}
        assert by_key["archive/notes.txt"][3:6] == ["failed", "200", "PermanentFailure"]  # as the user guide shows
        assert by_key["archive/coffee.jpg"][3] == "succeeded"
        manifest = json.loads(local.s3.get_object(Bucket=local_aws.LOCAL_REPORTS, Key=report.manifest_key)["Body"]
                              .read())  # fmt: skip
        assert {r["TaskExecutionStatus"] for r in manifest["Results"]} == {"succeeded", "failed"}
        assert local.dlq() == []  # the job's report is a backlog task's failure record, not the DLQ

        # run again: nothing is left to do but the rejected file, which is not retried (already REJECTED)
        assert main(["backfill", f"s3://{pipeline.bucket}/archive/", "--engine", "batch-operations", "--local"]) == 0
        assert "0 task(s), 0 succeeded, 0 failed" in capsys.readouterr().out
    finally:
        pipeline.stop()
