"""The package, proven as Lambda loads it: the function's asset and the Powertools layer exactly as the
synthesized assembly ships them, in a fresh interpreter whose only importable code is the asset, the layer and
what the Lambda Python runtime provides (boto3, botocore and their dependencies: `make lambda-runtime`). One
invocation runs against the embedded AWS of local mode (moto's server, the DetectFaces emulator).

The tests run Python 3.11 while the function runs on 3.14 (docs/DEPLOY.md names this as a remaining risk)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from detect_faces import contract
from detect_faces.results import ResultsStore
from facepipe.common.photos import photo
from facepipe.local.aws import FAKE_CREDENTIALS
from facepipe.local.centerface import FixedDetector
from tests.helpers import start_local
from tests.infra.synth import ROOT, Synth

pytestmark = pytest.mark.infra

RUNTIME = ROOT / "build" / "lambda-runtime"

INVOKE = """
import json, sys
sys.path[:] = [p for p in sys.path if "site-packages" not in p and "dist-packages" not in p] + {paths!r}
import detect_faces.{module} as module
class Context:
    function_name = "detect_faces"; memory_limit_in_mb = 256; function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:detect_faces"
    aws_request_id = "package-test"
    def get_remaining_time_in_millis(self): return 60000
result = module.lambda_handler(json.loads(sys.argv[1]), Context())
leaked = sorted({{m.split(".")[0] for m in sys.modules}} & {{"moto", "facepipe", "infra", "tests", "cv2", "numpy"}})
origin = {{name: sys.modules[name].__file__ for name in ("detect_faces", "aws_lambda_powertools", "boto3")}}
print(json.dumps({{"result": result, "leaked": leaked, "origin": origin}}))
"""


def function_assets(synth: Synth) -> tuple[Path, Path]:
    """The function's code and its layer, as asset folders of the cloud assembly (what cdk deploy uploads)."""
    functions = [r for r in synth.resources("AWS::Lambda::Function").values() if "Layers" in r["Properties"]]
    assert len({json.dumps(f["Properties"]["Code"]) for f in functions}) == 1  # live and backlog: one asset
    function = functions[0]
    ((_, layer),) = synth.resources("AWS::Lambda::LayerVersion").items()
    (manifest,) = synth.outdir.glob("*.assets.json")
    files = json.loads(manifest.read_text())["files"]

    def folder(s3_key: str) -> Path:
        source = files[s3_key.removesuffix(".zip")]["source"]
        assert source["packaging"] == "zip", source
        return synth.outdir / str(source["path"])

    return folder(function["Properties"]["Code"]["S3Key"]), folder(layer["Properties"]["Content"]["S3Key"])


def test_the_deployed_package_runs_one_invocation_with_only_what_lambda_provides(default_synth: Synth) -> None:
    if not (RUNTIME / "boto3").is_dir():
        pytest.fail("build/lambda-runtime is missing: run `make lambda-runtime` (make test does)")
    code, layer = function_assets(default_synth)
    assert (code / "detect_faces" / "handler.py").is_file() and not (
        code / "detect_faces" / "requirements.txt"
    ).exists()

    pipeline = start_local(FixedDetector())
    try:
        assert pipeline.runtime is not None
        pipeline.runtime.pause()  # this invocation is the package's, not the local runtime's
        s3 = pipeline.client("s3")
        version = s3.put_object(Bucket=pipeline.bucket, Key="pkg.jpg", Body=photo("astronaut.jpg"))["VersionId"]
        event: dict[str, Any] = {"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": pipeline.settings.region,
            "eventTime": "2026-11-29T12:00:00.000Z", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": pipeline.bucket},
                   "object": {"key": "pkg.jpg", "size": 1000, "eTag": "e", "versionId": version,
                              "sequencer": "0055AED6DCD90281E5"}}}]}  # fmt: skip
        env = {
            "PATH": "/usr/bin:/bin",
            **FAKE_CREDENTIALS,
            **{k: v for k, v in pipeline.env.items() if k.startswith("AWS_")},
            "RESULTS_TABLE": pipeline.table,
            "FAILURE_QUEUE_URL": pipeline.dlq_url,
            "POWERTOOLS_SERVICE_NAME": "facepipe",
            "POWERTOOLS_METRICS_NAMESPACE": "Facepipe",
            "LOG_LEVEL": "WARNING",
        }
        paths = [str(code), str(layer / "python"), str(RUNTIME)]

        def invoke(module: str, event: dict[str, Any]) -> dict[str, Any]:
            out = subprocess.run(
                [sys.executable, "-I", "-c", INVOKE.format(paths=paths, module=module), json.dumps(event)],
                env=env, capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert out.returncode == 0, out.stderr[-3000:]
            return dict(json.loads(out.stdout.strip().splitlines()[-1]))

        report = invoke("handler", event)

        # Then the invocation stored its result, and nothing but the asset and the layer supplied our code
        assert report["result"]["records"][0]["outcome"] == "detected", report
        assert report["leaked"] == []
        origin = report["origin"]
        assert origin["detect_faces"].startswith(str(code)), origin
        assert origin["aws_lambda_powertools"].startswith(str(layer)), origin
        assert origin["boto3"].startswith(str(RUNTIME)), origin
        stored = ResultsStore(pipeline.client("dynamodb"), pipeline.table).get(pipeline.bucket, "pkg.jpg")
        assert stored is not None and (stored.status, stored.version_id) == ("DETECTED", version)

        # And the backlog entry point, from the same asset: Powertools' Batch Operations classes from the layer
        s3.put_object(Bucket=pipeline.bucket, Key="old photo.jpg", Body=photo("astronaut.jpg"))
        task = {"taskId": "t1", "s3Key": "old%20photo.jpg", "s3VersionId": None, "s3Bucket": pipeline.bucket}
        job = {"invocationSchemaVersion": "2.0", "invocationId": "i1", "job": {"id": "j1"}, "tasks": [task]}
        backlog = invoke("backlog", job)
        assert backlog["leaked"] == [] and backlog["origin"]["aws_lambda_powertools"].startswith(str(layer))
        (answer,) = backlog["result"]["results"]
        assert (answer["taskId"], answer["resultCode"]) == ("t1", "Succeeded"), backlog
        stored = ResultsStore(pipeline.client("dynamodb"), pipeline.table).get(pipeline.bucket, "old photo.jpg")
        assert stored is not None and stored.status == "DETECTED"

        # And the events entry point, from the same asset: a batch of the table's stream records as the event source
        # mapping hands them over, one event put on the bus for the outcome among them
        streams, table = pipeline.client("dynamodbstreams"), pipeline.client("dynamodb")
        arn = table.describe_table(TableName=pipeline.table)["Table"]["LatestStreamArn"]
        (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
        records = [{**r, "eventSourceARN": arn} for r in streams.get_records(ShardIterator=iterator)["Records"]]
        env[contract.OUTCOME_EVENT_BUS_VARIABLE] = "default"
        published = invoke("outcome_events", json.loads(json.dumps({"Records": records}, default=str)))
        assert published["leaked"] == [] and published["origin"]["aws_lambda_powertools"].startswith(str(layer))
        assert published["result"] == {"batchItemFailures": []}, published
    finally:
        pipeline.stop()


def test_the_function_asset_holds_the_functions_only() -> None:
    # cdk deploy uploads lambdas/ (less caches and requirements.txt): no development file may sit there; it holds the
    # detect function and the redaction function, one package each
    files = {p.relative_to(ROOT / "lambdas").as_posix() for p in (ROOT / "lambdas").rglob("*") if p.is_file()}
    files = {f for f in files if "__pycache__" not in f}
    assert {f.split("/", 1)[0] for f in files} == {"detect_faces", "redaction"}
    assert all(f.endswith((".py", "requirements.txt")) for f in files), files


def test_the_redaction_layer_is_pillow_for_the_functions_runtime_and_architecture() -> None:
    # Lambda's Python 3.14 on arm64 loads Pillow's compiled core from the layer's python/ folder. This machine cannot
    # load an aarch64 extension, so the layer's contents are checked instead: the pinned version, built for cp314
    # on aarch64 (manylinux_2_28: Lambda's Python 3.14 runtime has glibc 2.34), nothing of the runtime's own.
    layer = ROOT / "build" / "redaction-layer" / "python"
    if not (layer / "PIL").is_dir():
        pytest.fail("build/redaction-layer is missing: run `make redaction-layer` (make test does)")
    pinned = (ROOT / "lambdas" / "redaction" / "requirements.txt").read_text()
    (metadata,) = layer.glob("pillow-*.dist-info/METADATA")
    version = next(line.split(": ", 1)[1] for line in metadata.read_text().splitlines() if line.startswith("Version:"))
    assert f"pillow=={version}" in pinned.lower()
    assert (layer / "PIL" / "_imaging.cpython-314-aarch64-linux-gnu.so").is_file()
    wheel = (metadata.parent / "WHEEL").read_text()
    assert "cp314-cp314-manylinux_2_28_aarch64" in wheel or "manylinux_2_28_aarch64" in wheel, wheel
    assert not {"boto3", "botocore", "numpy"} & {p.name for p in layer.iterdir()}
