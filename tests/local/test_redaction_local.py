"""Local mode with redacted copies on (`local up --redaction blur`): the redaction function's real handler, driven
by the outcome events through a rule on the embedded EventBridge, writes `<bucket>/<key>` to the redacted bucket."""

from __future__ import annotations

import dataclasses
import io
import json
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from detect_faces import contract
from detect_faces.contract import REDACTION_MODES, REDACTION_OFF
from detect_faces.dead_letters import failure_record
from facepipe import ops
from facepipe.cli import build_parser, main
from facepipe.common import photos
from facepipe.local import demo, state
from facepipe.local.aws import LOCAL_FUNCTION, local_clients
from facepipe.local.centerface import CenterFaceDetector
from facepipe.local.pipeline import REDACTION_CHOICES, LocalPipeline, LocalSettings
from facepipe.ops.redrive import NO_REDACTION_FUNCTION
from redaction.redact import Mode
from tests.helpers import start_local
from tests.local.test_local_up import local_up

pytestmark = pytest.mark.e2e


def faces_in(detector: CenterFaceDetector, body: bytes) -> int:
    return len(detector.detect(np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))))


def exists(pipeline: LocalPipeline, key: str) -> bool:
    try:
        pipeline.client("s3").head_object(Bucket=pipeline.redacted_bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in {"404", "NoSuchKey"}:
            return False
        raise
    return True


def test_the_choices_are_off_and_the_functions_modes() -> None:
    assert tuple(m.value for m in Mode) == REDACTION_MODES
    assert (REDACTION_OFF, *REDACTION_MODES) == REDACTION_CHOICES
    args = build_parser().parse_args(["local", "up", "--redaction", "pixelate"])
    assert args.redaction == "pixelate"
    assert build_parser().parse_args(["local", "up"]).redaction == REDACTION_OFF
    with pytest.raises(SystemExit):
        build_parser().parse_args(["local", "up", "--redaction", "smudge"])


def test_redacted_copy_of_a_photo_and_none_of_a_rejected_file_and_deleted_with_its_source(
    detector: CenterFaceDetector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FACEPIPE_STATE_DIR", str(tmp_path))
    pipeline = start_local(detector, settings={"redaction": "blur"})
    state.write(pipeline.state())  # as `local up` does, for the operator commands' --local
    try:
        s3 = pipeline.client("s3")
        assert pipeline.redacted_bucket and pipeline.redacted_bucket != pipeline.bucket
        original = photos.photo("grace_hopper.jpg")
        assert faces_in(detector, original) >= 1

        # Given a photo with a face and a text file, uploaded to the watched bucket
        s3.put_object(Bucket=pipeline.bucket, Key="team/grace.jpg", Body=original)
        s3.put_object(Bucket=pipeline.bucket, Key="notes/readme.txt", Body=b"not an image")
        # When every event settles (one s3:TestEvent and one per upload), the redaction function's included
        assert pipeline.wait_for_events(3, timeout=120)

        # Then the photo has a copy under <bucket>/<key>, in which the detector finds no face
        copy = s3.get_object(Bucket=pipeline.redacted_bucket, Key=f"{pipeline.bucket}/team/grace.jpg")
        assert copy["Metadata"]["facepipe-redaction"].startswith("blur ")
        assert faces_in(detector, copy["Body"].read()) == 0
        # and the rejected text file has none
        assert not exists(pipeline, f"{pipeline.bucket}/notes/readme.txt")
        assert pipeline.redaction_runtime is not None
        assert pipeline.redaction_runtime.stats.dead_lettered == 0

        # And `show --redacted` saves that copy, byte for byte, or re-encoded to the format asked for
        uri = f"s3://{pipeline.bucket}/team/grace.jpg"
        assert main(["show", uri, "--redacted", "-o", str(tmp_path / "same.jpg"), "--local"]) == 0
        printed = capsys.readouterr().out
        assert f"the redacted copy of {uri}" in printed and "(blur margin=" in printed
        copy_bytes = s3.get_object(Bucket=pipeline.redacted_bucket, Key=f"{pipeline.bucket}/team/grace.jpg")["Body"]
        assert (tmp_path / "same.jpg").read_bytes() == copy_bytes.read()
        assert main(["show", uri, "--redacted", "-o", str(tmp_path / "other.png"), "--local"]) == 0
        assert (tmp_path / "other.png").read_bytes().startswith(b"\x89PNG")
        assert faces_in(detector, (tmp_path / "other.png").read_bytes()) == 0
        # and a file with no copy is refused in one line
        assert main(["show", f"s3://{pipeline.bucket}/notes/readme.txt", "--redacted", "--local"]) != 0
        assert "only analysed images have a redacted copy" in capsys.readouterr().err

        # When the photo is deleted
        s3.delete_object(Bucket=pipeline.bucket, Key="team/grace.jpg")
        assert pipeline.wait_for_events(4, timeout=120)
        # Then its copy is gone too
        assert not exists(pipeline, f"{pipeline.bucket}/team/grace.jpg")
        assert pipeline.state().redacted_bucket == pipeline.redacted_bucket
    finally:
        state.clear()
        pipeline.stop()


def test_redaction_is_off_by_default_and_refuses_what_it_cannot_run() -> None:
    assert LocalSettings().redaction == REDACTION_OFF
    with pytest.raises(ValueError, match="redaction must be one of"):
        LocalPipeline(LocalSettings(redaction="smudge")).start()
    with pytest.raises(ValueError, match="needs the outcome events"):
        LocalPipeline(LocalSettings(redaction="blur", events=False)).start()


def test_demo_saves_the_redacted_copies_beside_the_annotated_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], detector: CenterFaceDetector
) -> None:
    # When the demo runs as `make demo` runs it (redaction on by default)
    assert build_parser().parse_args(["demo"]).redaction == demo.DEFAULT_REDACTION == "blur"
    assert main(["demo", "--out", str(tmp_path), "--concurrency", "2"]) == 0
    printed = capsys.readouterr().out

    # Then it says where the copies are, and each annotated photo has its redacted copy beside it
    assert f"Redacted copies (blur, every detected face hidden; *.redacted.*): {tmp_path}" in printed
    annotated = sorted(tmp_path.glob("*.png"))
    annotated = [p for p in annotated if ".redacted." not in p.name]
    assert len(annotated) >= 4
    for image in annotated:
        (copy,) = tmp_path.glob(f"{image.stem}.redacted.*")
        # in which the offline detector finds no face
        assert faces_in(detector, copy.read_bytes()) == 0, copy.name
    # and the photo with no face is copied too (a complete mirror); the rejected files are not
    assert list(tmp_path.glob("coffee.redacted.jpg"))
    assert not list(tmp_path.glob("notes.redacted.*")) and not list(tmp_path.glob("thumbnail.redacted.*"))


class _Cfn:
    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        return {"Stacks": [{"Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]}]}


class _Session:
    region_name = "us-east-1"

    def __init__(self, outputs: dict[str, str]) -> None:
        self._cfn = _Cfn(outputs)

    def client(self, service: str) -> Any:
        assert service == "cloudformation"
        return self._cfn


def test_a_deployed_stacks_redacted_bucket_is_its_output_and_a_stack_without_one_is_refused() -> None:
    outputs = {contract.OUTPUT_BUCKET: "b", contract.OUTPUT_TABLE: "t", contract.OUTPUT_DLQ_URL: "https://q",
               contract.OUTPUT_FUNCTION: "f"}  # fmt: skip
    with_copies = ops.stack_target("Facepipe", _Session({**outputs, contract.OUTPUT_REDACTED_BUCKET: "mirror"}))
    assert with_copies.redaction_bucket == "mirror"
    without = ops.stack_target("Facepipe", _Session(outputs))
    assert without.redaction_bucket == ""
    with pytest.raises(ops.OpsError, match="makes no redacted copies"):
        ops.show_redacted(without, "s3://b/photo.jpg", None)


def test_a_redaction_failure_is_listed_by_its_image_and_redriven_to_the_redaction_function(
    detector: CenterFaceDetector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FACEPIPE_STATE_DIR", str(tmp_path))
    pipeline = start_local(detector, settings={"redaction": "fill"})
    state.write(pipeline.state())
    try:
        s3, sqs, events = pipeline.client("s3"), pipeline.client("sqs"), pipeline.client("events")
        # Given a consumer's own copy of the outcome events, and an analysed photo
        mine = sqs.create_queue(QueueName="mine")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=mine, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="mine", EventPattern=json.dumps({"source": ["facepipe"]}))
        events.put_targets(Rule="mine", Targets=[{"Id": "mine", "Arn": arn}])
        s3.put_object(Bucket=pipeline.bucket, Key="team/astronaut.jpg", Body=photos.photo("astronaut.jpg"))
        assert pipeline.wait_for_events(2, timeout=120)
        (message,) = sqs.receive_message(QueueUrl=mine, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
        event = json.loads(message["Body"])
        assert event["detail-type"] == "Faces Detected"
        copy = f"{pipeline.bucket}/team/astronaut.jpg"
        assert exists(pipeline, copy)

        # and a failure record of the redaction function for it (its copy lost), as the function writes one
        s3.delete_object(Bucket=pipeline.redacted_bucket, Key=copy)
        function = pipeline.state().redaction_function_name
        record = failure_record(
            event, error_type="NoSuchVersion", error_message="the version could not be read",
            request_id="r-1", function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{function}",
        )  # fmt: skip
        sqs.send_message(QueueUrl=pipeline.dlq_url, MessageBody=json.dumps(record))

        # Then `failures` lists it by the image its outcome is about
        assert main(["failures", "--local", "--json"]) == 0
        (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert (listed["bucket"], listed["key"], listed["version_id"]) == (
            pipeline.bucket, "team/astronaut.jpg", event["detail"]["version_id"],
        )  # fmt: skip
        assert (listed["error_type"], listed["problem"], listed["records"]) == ("NoSuchVersion", None, 1)

        # and a target that names no redaction function (a deployed stack today) leaves it, saying why
        no_function = dataclasses.replace(state.local_target(), redaction_function_name="")
        left = ops.redrive(no_function)
        assert (left.replayed, left.skipped) == (0, 1)
        assert list(left.cannot_replay) == [NO_REDACTION_FUNCTION]

        # When it is redriven to the local stack, the redaction function remakes the copy
        assert main(["redrive", "--local"]) == 0
        printed = capsys.readouterr().out
        assert f"replayed 1 record(s) through {function} (1)" in printed
        assert pipeline.redaction_runtime is not None
        assert pipeline.redaction_runtime.wait_idle(60)
        assert exists(pipeline, copy)
        written = s3.head_object(Bucket=pipeline.redacted_bucket, Key=copy)["Metadata"]
        assert written["facepipe-redaction"].startswith("fill ")
        assert ops.list_failures(state.local_target()) == []
        # (one Lambda endpoint serves both functions, by name, and no other)
        lambda_ = pipeline.client("lambda")
        for name in (LOCAL_FUNCTION, function):
            assert lambda_.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204
        with pytest.raises(ClientError, match="ResourceNotFoundException"):
            lambda_.invoke(FunctionName="facepipe-local-other", InvocationType="DryRun")
    finally:
        state.clear()
        pipeline.stop()


def test_local_up_with_redaction_prints_each_copy_and_show_draws_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEPIPE_STATE_DIR", str(tmp_path))
    proc, endpoints, deadline = local_up(tmp_path, "--redaction", "pixelate", "--fast-detector")
    try:
        assert endpoints["redacted_bucket"] == "facepipe-redacted" != endpoints["bucket"]
        s3 = local_clients("us-east-1", {}, endpoints["endpoint"])("s3")
        s3.put_object(Bucket=endpoints["bucket"], Key="mine/grace.jpg", Body=photos.photo("grace_hopper.jpg"))
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("redaction written" in line for line in lines):
            assert time.monotonic() < deadline + 30, "".join(lines)
            lines.append(proc.stdout.readline())
        assert f"{endpoints['bucket']}/mine/grace.jpg" in lines[-1]
        assert any("redaction:   pixelate: copies in s3://facepipe-redacted/<bucket>/<key>" in line for line in lines)
        out = tmp_path / "grace.png"
        assert (
            main(["show", f"s3://{endpoints['bucket']}/mine/grace.jpg", "--redacted", "-o", str(out), "--local"]) == 0
        )
        assert "(pixelate margin=0.15 faces=1)" in capsys.readouterr().out
        assert out.read_bytes().startswith(b"\x89PNG")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
