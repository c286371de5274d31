"""Shared test setup: moto's fake credentials, a fixed region, Powertools quiet but measurable; and each test's
level (the markers `make test-fast` selects on), given by its folder.

Levels, by what a test needs: `unit` pure logic; `integration` moto (the venv alone); `infra` a synthesized stack
(node, `make layer`, `make lambda-runtime`); `e2e` the local stack on real images; `rehearsal` fault rehearsal
through it. `make test-fast` runs `unit or integration`, so it needs the venv and nothing else.

The folder gives the level: function/ and ops/ integration, infra/ infra, local/ e2e. A module (or a test) may
say otherwise with a marker in two ways only: `unit` (pure logic, none of its folder's machinery: e.g.
infra/test_pins.py), or a level heavier than its folder's (e2e in ops/, rehearsal in local/). Any other level it
names is replaced by its folder's: an `integration` marker under infra/ is an infra test, since infra/ tests
synthesize the stack. A test file outside these folders is a collection error until FOLDER_LEVEL names it."""

from __future__ import annotations

import os

from facepipe.local.aws import FAKE_CREDENTIALS  # moto's, in one place; importing builds no client

# Before anything builds a boto3 client. moto's documented fake credentials; never real ones.
os.environ.update(
    {
        **FAKE_CREDENTIALS,
        "AWS_SECURITY_TOKEN": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "facepipe-test",
        "POWERTOOLS_METRICS_NAMESPACE": "FacepipeTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "LOG_LEVEL": "WARNING",
    }
)
for name in list(os.environ):
    if name.startswith("AWS_ENDPOINT_URL") or name == "AWS_PROFILE":
        del os.environ[name]


# ---- fixtures shared by the folders (their helpers live in tests/helpers.py) ---------------------------------
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from detect_faces import handler  # noqa: E402
from facepipe.local.centerface import CenterFaceDetector  # noqa: E402
from tests.helpers import (  # noqa: E402
    Aws,
    Local,
    Pipeline,
    Rekognition,
    make_pipeline,
    moto_aws,
    start_local,
    stubbed_rekognition,
)


@pytest.fixture
def aws() -> Iterator[Aws]:
    with moto_aws() as stood_up:
        yield stood_up


@pytest.fixture
def rekognition() -> Iterator[Rekognition]:
    stub = stubbed_rekognition()
    yield stub
    stub.stubber.assert_no_pending_responses()


@pytest.fixture
def pipeline(aws: Aws, rekognition: Rekognition, capsys: Any) -> Iterator[Pipeline]:
    yield make_pipeline(aws, rekognition, capsys)
    handler.set_processor(None)


@pytest.fixture(scope="session")
def detector() -> CenterFaceDetector:
    return CenterFaceDetector()  # networks are per input shape; share them across the session


@pytest.fixture
def local(detector: CenterFaceDetector) -> Iterator[Local]:
    pipeline = start_local(detector)
    try:
        yield Local(pipeline)
    finally:
        pipeline.stop()


# ---- levels by folder (the module docstring states the rule) -------------------------------------------------
LEVEL_WEIGHT = {"unit": 0, "integration": 1, "e2e": 2, "infra": 2, "rehearsal": 3}
FOLDER_LEVEL = {"function": "integration", "ops": "integration", "infra": "infra", "local": "e2e"}
TESTS = Path(__file__).resolve().parent


def level_of(item: pytest.Item) -> list[str]:
    """The levels a collected test runs at: what it says, where its folder allows that, else its folder's."""
    folder = item.path.resolve().relative_to(TESTS).parts[0]
    if folder not in FOLDER_LEVEL:
        raise pytest.UsageError(f"{item.nodeid}: tests/{folder}/ has no level: add it to FOLDER_LEVEL in {__file__}")
    given = FOLDER_LEVEL[folder]
    said = {m.name for m in item.iter_markers() if m.name in LEVEL_WEIGHT}
    allowed = sorted(s for s in said if s in ("unit", given) or LEVEL_WEIGHT[s] > LEVEL_WEIGHT[given])
    return allowed or [given]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    levels = {item.nodeid: level_of(item) for item in items}
    for item in items:  # then the levels the tests said are replaced by the ones they run at
        for node in item.listchain():
            node.own_markers[:] = [m for m in node.own_markers if m.name not in LEVEL_WEIGHT]
    for item in items:
        for level in levels[item.nodeid]:
            item.add_marker(level)
