"""infra/settings.py: the `facepipe:` settings read in plain Python, as the CDK CLI merges context (-c flags, then
cdk.json's "context", then cdk.context.json, then ~/.cdk.json), with no jsii. That the stack reads the same settings
through it is tests/infra/test_stack.py's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.settings import (
    ContextError,
    FacepipeSettings,
    merged_context,
    parse_flags,
    read_settings,
)
from tests.infra.synth import ROOT

pytestmark = pytest.mark.unit  # files and dicts: no synthesis, whatever its folder gives

# One mistake per key, each refused with one line that names the key (what infra/config.py always said).
MISTAKES: list[tuple[dict[str, object], str]] = [
    ({"faceAttributes": "SOME"}, "faceAttributes must be DEFAULT or ALL, got 'SOME'"),
    ({"reservedConcurrency": "many"}, "reservedConcurrency must be an integer, got 'many'"),
    ({"reservedConcurrency": [3]}, "reservedConcurrency must be an integer, got \\[3\\]"),
    ({"retryAttempts": 3}, "retryAttempts must be between 0 and 2, got 3"),
    ({"retryAttempts": "none"}, "retryAttempts is required"),
    ({"maxEventAgeSeconds": 30}, "maxEventAgeSeconds must be between 60 and 21600"),
    ({"memoryMb": 64}, "memoryMb must be between 128 and 10240"),
    ({"timeoutSeconds": 901}, "timeoutSeconds must be between 10 and 900"),
    ({"detectMaxAttempts": 0}, "detectMaxAttempts must be between 1 and 20"),
    ({"removalPolicy": "maybe"}, "removalPolicy must be retain or destroy, got 'maybe'"),
    ({"logRetentionDays": 31}, "logRetentionDays must be one of"),
    ({"alarmEmail": "ops"}, "alarmEmail must be an email address, got 'ops'"),
    ({"detectFacesQuota": "lots"}, "detectFacesQuota must be a number \\(TPS\\), got 'lots'"),
    ({"detectFacesQuota": -5}, "detectFacesQuota must be between 0 and 10000 TPS, got -5.0"),
    ({"backlogConcurrency": 0}, "backlogConcurrency must be between 1 and 10000, got 0"),
    ({"existingBuckets": '["My_Photos"]'}, "existingBuckets: 'My_Photos' is not an S3 bucket name"),
    ({"existingBuckets": '["b1"'}, "existingBuckets is not a JSON list"),
    ({"existingBuckets": {"b": 1}}, "existingBuckets must be a list of strings"),
    ({"keyPrefixes": '["uploads/"]'}, "keyPrefixes applies to existing buckets only"),
    ({"existingBuckets": "bucket-1", "keyPrefixes": '["a/", "a/b/"]'}, "'a/' already covers 'a/b/'"),
    ({"existingBuckets": "bucket-1", "keyPrefixes": '["/a"]'}, "must not start with '/'"),
    ({"existingBuckets": "bucket-1", "keyPrefixes": ["x" * 1025]}, "longer than an S3 key can be"),
    ({"existingBuckets": "bucket-1", "keyPrefixes": '["raw*/"]'}, "'raw\\*/' has '\\*'"),
    ({"existingBuckets": "bucket-1", "keyPrefixes": '["tab\\there/"]'}, "control character"),
    ({"existingBuckets": "bucket-1", "keyPrefixes": '["Camera (2019)/"]'}, "facepipe:notifications=eventbridge"),
    ({"existingBuckets": "bucket-1", "notifications": "sqs"}, "notifications must be s3 or eventbridge, got 'sqs'"),
    ({"existingBuckets": "bucket-1", "kmsKeyArns": '["alias/photos"]'}, "an alias does not work"),
    ({"stackName": "my stack"}, "stackName must be a CloudFormation stack name"),
]  # fmt: skip


def settings(**values: object) -> FacepipeSettings:
    return FacepipeSettings.from_values({f"facepipe:{k}": v for k, v in values.items()})


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("values", "says"), MISTAKES)
def test_every_mistake_is_one_line_naming_the_key(values: dict[str, object], says: str) -> None:
    with pytest.raises(ContextError, match=says) as caught:
        settings(**values)
    assert "\n" not in str(caught.value) and "facepipe:" in str(caught.value)


def test_defaults_and_values_as_the_cli_passes_them() -> None:
    """Absent, null and "" are the default; -c flags are strings, cdk.json may hold numbers and lists."""
    assert settings() == FacepipeSettings()
    assert settings(memoryMb="", reservedConcurrency=None) == FacepipeSettings()
    assert settings(memoryMb="512", reservedConcurrency="unreserved").memory_mb == 512
    tuned = settings(faceAttributes="all", removalPolicy="DESTROY", notifications="EventBridge", detectFacesQuota="50")
    assert (tuned.face_attributes, tuned.removal_policy, tuned.notifications) == ("ALL", "destroy", "eventbridge")
    assert tuned.function_concurrency == 20  # ceil(50 TPS x 0.4 s)
    for value in ('["a-bucket", "b-bucket"]', "a-bucket, b-bucket", ["a-bucket", "b-bucket", "a-bucket"]):
        assert settings(existingBuckets=value).existing_buckets == ("a-bucket", "b-bucket")
    assert settings(stackName="Faces-Dev").stack_name == "Faces-Dev"


def test_flags_win_then_cdk_json_then_cdk_context_json_then_the_home_file(tmp_path: Path) -> None:
    """The order the CDK CLI reads a context key in: the first source that has it wins."""
    home = write_json(tmp_path / "home" / ".cdk.json", {"context": {f"facepipe:{k}": "64" for k in "abcd"}})
    write_json(tmp_path / "cdk.context.json", {f"facepipe:{k}": "32" for k in "abc"})
    write_json(tmp_path / "cdk.json", {"app": "python app.py", "context": {f"facepipe:{k}": "16" for k in "ab"}})
    merged = merged_context(tmp_path, ["facepipe:a=8"], user_defaults=home)
    assert {k: merged[f"facepipe:{k}"] for k in "abcd"} == {"a": "8", "b": "16", "c": "32", "d": "64"}
    assert "facepipe:d" not in merged_context(tmp_path, user_defaults=None)


def test_read_settings_reads_what_a_deploy_would(tmp_path: Path) -> None:
    write_json(tmp_path / "cdk.json", {"context": {"facepipe:memoryMb": 512, "facepipe:existingBuckets": ["photos"]}})
    write_json(tmp_path / "cdk.context.json", {"facepipe:memoryMb": 1024, "facepipe:keyPrefixes": '["up/"]'})
    read = read_settings(tmp_path, ["facepipe:notifications=eventbridge"], user_defaults=None)
    assert (read.memory_mb, read.existing_buckets, read.key_prefixes) == (512, ("photos",), ("up/",))
    assert read.notifications == "eventbridge"
    assert read_settings(tmp_path / "nowhere", user_defaults=None) == FacepipeSettings()  # no files: the defaults
    assert read_settings(ROOT, user_defaults=None) == FacepipeSettings()  # the repo's cdk.json: feature flags only


def test_flags_are_key_value_split_at_the_first_equals_sign() -> None:
    assert parse_flags(["facepipe:keyPrefixes=a=b/", "facepipe:memoryMb=1", "facepipe:memoryMb=2"]) == {
        "facepipe:keyPrefixes": "a=b/",
        "facepipe:memoryMb": "2",
    }
    with pytest.raises(ContextError, match="'facepipe:memoryMb' is not key=value"):
        parse_flags(["facepipe:memoryMb"])


def test_a_broken_context_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "cdk.context.json").write_text("{not json")
    with pytest.raises(ContextError, match=re.escape("cdk.context.json is not valid JSON")):
        merged_context(tmp_path, user_defaults=None)
    write_json(tmp_path / "cdk.context.json", {})
    write_json(tmp_path / "cdk.json", {"context": ["facepipe:memoryMb"]})
    with pytest.raises(ContextError, match=re.escape('cdk.json: "context" must be a JSON object')):
        merged_context(tmp_path, user_defaults=None)


def test_the_reader_imports_without_aws_cdk() -> None:
    """A tool (doctor) reads the settings without starting jsii: importing the reader needs no aws_cdk, constructs
    or jsii, which are blocked here (None in sys.modules makes their import fail)."""
    code = (
        "import sys\n"
        "for name in ('aws_cdk', 'constructs', 'jsii', 'cdk_nag'):\n"
        "    sys.modules[name] = None\n"
        "from pathlib import Path\n"
        "from infra.settings import read_settings\n"
        "print(read_settings(Path(sys.argv[1]), ['facepipe:memoryMb=512'], user_defaults=None).memory_mb)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "512"
