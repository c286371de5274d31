"""Every S3 event sample other projects publish (../shared/real-s3-events: Powertools, the Go/Java/.NET Lambda
libraries, the SAM CLI, LocalStack, the S3 user guide) reaches one outcome in the function, never a crash that
loses the event. Skipped when ../shared is absent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detect_faces.model import Outcome
from tests.helpers import Pipeline

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "real-s3-events"
FILES = sorted(SAMPLES.glob("*.json")) if SAMPLES.is_dir() else []


def events_in(path: Path) -> list[dict[str, Any]]:
    """The events a file holds: the file itself, or, for LocalStack's test snapshots, every S3 record or
    EventBridge event recorded under `<test>.recorded-content`, each as the event Lambda would receive."""
    data = json.loads(path.read_text())
    if not path.name.startswith("localstack__"):
        return [data]
    found: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("eventSource") == "aws:s3":
                found.append({"Records": [value]})
            elif value.get("source") == "aws.s3" and "detail-type" in value:
                found.append(value)
            else:
                for v in value.values():
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for test in data.values():
        walk(test.get("recorded-content", {}))
    return found


@pytest.mark.skipif(not FILES, reason="../shared/real-s3-events is not beside the project")
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_published_sample_reaches_one_outcome(pipeline: Pipeline, path: Path) -> None:
    events = events_in(path)
    assert events, f"{path.name} holds no event"
    for event in events:
        result = pipeline.invoke(json.loads(json.dumps(event)))
        if "detail-type" in event:  # EventBridge: one event is one object
            (record,) = result["records"]
            assert record["outcome"] in {o.value for o in Outcome}, result
            continue
        if event.get("Event") == "s3:TestEvent":
            assert result == {"records": [], "skipped": "s3:TestEvent"}
            continue
        records = event["Records"]
        assert len(result["records"]) == len(records), result
        assert all(r["outcome"] in {o.value for o in Outcome} for r in result["records"]), result
