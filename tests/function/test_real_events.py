"""Every S3 event sample other projects publish (Powertools, the Go/Java/.NET Lambda libraries, the SAM CLI,
LocalStack, the S3 user guide) reaches one outcome in the function, never a crash that loses the event.

The samples are copied into tests/fixtures/real-s3-events (sources and licences: its SOURCES.md), so a clone on
its own runs them. The team's collection they come from, ../shared/real-s3-events, may hold newer ones: when it
sits beside the project, each of its files reaches one outcome too (that part alone skips when it is absent)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from detect_faces.model import Outcome
from tests.helpers import Pipeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real-s3-events"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "real-s3-events"
COPIED = sorted(FIXTURES.glob("*.json"))
SHARED_FILES = sorted(SHARED.glob("*.json")) if SHARED.is_dir() else []


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


def assert_every_event_reaches_one_outcome(pipeline: Pipeline, path: Path) -> None:
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


def test_the_copies_are_the_samples_sources_md_lists() -> None:
    """Each copied file has its row (source, commit, licence) in SOURCES.md, and each row its file."""
    rows = re.findall(r"^(\S+\.json) \|", (FIXTURES / "SOURCES.md").read_text(), flags=re.MULTILINE)
    assert len(rows) == len(set(rows))
    assert sorted(rows) == [p.name for p in COPIED]
    assert len(COPIED) >= 25  # the collection as copied; never an empty (silently skipped) parametrization


@pytest.mark.parametrize("path", COPIED, ids=[p.name for p in COPIED])
def test_every_published_sample_reaches_one_outcome(pipeline: Pipeline, path: Path) -> None:
    assert_every_event_reaches_one_outcome(pipeline, path)


@pytest.mark.parametrize(
    "path",
    SHARED_FILES or [pytest.param(None, marks=pytest.mark.skip(reason="../shared/real-s3-events is absent"))],
    ids=[f"shared/{p.name}" for p in SHARED_FILES] or ["shared"],
)
def test_every_sample_of_the_shared_collection_reaches_one_outcome(request: pytest.FixtureRequest, path: Path) -> None:
    copy = FIXTURES / path.name
    if copy.is_file() and copy.read_bytes() == path.read_bytes():
        return  # the same bytes run above, from tests/fixtures
    assert_every_event_reaches_one_outcome(request.getfixturevalue("pipeline"), path)
