"""`python -m facepipe local up` as a user runs it: a separate process, any S3 client, then the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from facepipe.cli import main
from facepipe.common import photos
from facepipe.local.aws import FAKE_CREDENTIALS, local_clients

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def local_up(tmp_path: Path, *options: str) -> tuple[subprocess.Popen[str], dict[str, Any], float]:
    """`local up` in its own process, as a user starts it: the process, the state it wrote, a deadline."""
    env = {**os.environ, "FACEPIPE_STATE_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "facepipe", "local", "up", "--port", "0", *options],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    state = tmp_path / "local.json"
    deadline = time.monotonic() + 60
    while not state.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"local up did not start: {proc.stdout.read() if proc.stdout else ''}")
        time.sleep(0.2)
    return proc, json.loads(state.read_text()), deadline


def test_local_up_processes_uploads_from_any_client_and_stops_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEPIPE_STATE_DIR", str(tmp_path))
    proc, endpoints, deadline = local_up(tmp_path)
    state = tmp_path / "local.json"
    try:
        # Given an upload from a plain boto3 client, as any S3 tool would make it
        s3 = boto3.client("s3", endpoint_url=endpoints["endpoint"], region_name="us-east-1",
                          aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
        s3.put_object(Bucket=endpoints["bucket"], Key="mine/grace.jpg", Body=photos.photo("grace_hopper.jpg"))

        # Then local up reports it, and the operator CLI sees the result through the state file
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("mine/grace.jpg" in line for line in lines):
            assert time.monotonic() < deadline + 30, "".join(lines)
            lines.append(proc.stdout.readline())
        assert "detected" in lines[-1] and "1 face(s)" in lines[-1]
        assert main(["results", "--local"]) == 0
        assert capsys.readouterr().out.splitlines()[2].split()[:3] == ["mine/grace.jpg", "DETECTED", "1"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not state.exists()  # the state file goes with the stack


def test_local_up_attaches_to_an_existing_bucket_over_eventbridge_and_detaches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEPIPE_STATE_DIR", str(tmp_path))
    proc, endpoints, deadline = local_up(
        tmp_path, "--existing-bucket", "their-photos", "--notifications", "eventbridge"
    )
    try:
        assert endpoints["bucket"] == "their-photos" and endpoints["locations"] == ["s3://their-photos/uploads/"]
        clients = local_clients("us-east-1", {}, endpoints["endpoint"])  # plain boto3 clients for its endpoint
        s3, sqs = clients("s3"), clients("sqs")
        s3.put_object(Bucket="their-photos", Key="uploads/grace.jpg", Body=photos.photo("grace_hopper.jpg"))
        s3.put_object(Bucket="their-photos", Key="exports/day.csv", Body=b"a,b\n")

        assert proc.stdout is not None
        lines: list[str] = []
        while not any("uploads/grace.jpg" in line for line in lines):
            assert time.monotonic() < deadline + 30, "".join(lines)
            lines.append(proc.stdout.readline())
        assert "detected" in lines[-1]
        assert not any("exports/day.csv" in line for line in lines)  # outside the watched prefix
        queue = sqs.get_queue_url(QueueName="other-consumer")["QueueUrl"]
        received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=2)
        bodies = [json.loads(m["Body"]) for m in received.get("Messages", [])]
        keys = [r["s3"]["object"]["key"] for b in bodies for r in b.get("Records", [])]
        assert [k.replace("%2F", "/") for k in keys] == ["exports/day.csv"]  # the other consumer kept its events
        assert main(["results", "--local", "s3://their-photos/uploads/"]) == 0
        assert capsys.readouterr().out.splitlines()[2].split()[:2] == ["uploads/grace.jpg", "DETECTED"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0  # detached, as cdk destroy would, then stopped


def test_local_up_refuses_an_overlapping_attach_in_one_line_pointing_to_eventbridge(tmp_path: Path) -> None:
    env = {**os.environ, "FACEPIPE_STATE_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "facepipe", "local", "up", "--port", "0", "--existing-bucket", "their-photos",
               "--key-prefix", ""]  # every key: the other consumer's exports/ entry overlaps  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "Configuration is ambiguously defined" in done.stderr and "--notifications eventbridge" in done.stderr
    assert not (tmp_path / "local.json").exists()
