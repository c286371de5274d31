"""`python -m facepipe local up` as a user runs it: a separate process, any S3 client, then the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from facepipe.cli import main
from facepipe.local import photos
from facepipe.local.aws import FAKE_CREDENTIALS

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_local_up_processes_uploads_from_any_client_and_stops_cleanly(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("FACEPIPE_STATE_DIR", str(tmp_path))
    env = {**os.environ, "FACEPIPE_STATE_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "facepipe", "local", "up", "--port", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    state = tmp_path / "local.json"
    try:
        deadline = time.monotonic() + 60
        while not state.exists():
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "local up did not start"
            time.sleep(0.2)
        endpoints = json.loads(state.read_text())

        # Given an upload from a plain boto3 client, as any S3 tool would make it
        s3 = boto3.client("s3", endpoint_url=endpoints["endpoint"], region_name="us-east-1",
                          aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
        s3.put_object(Bucket=endpoints["bucket"], Key="mine/grace.jpg", Body=photos.photo("grace_hopper.jpg"))

        # Then local up reports it, and the operator CLI sees the result through the state file
        assert proc.stdout is not None
        lines = []
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
