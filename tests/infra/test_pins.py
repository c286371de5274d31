"""The deployed function runs the Powertools the tests run: the layer's pins match requirements.txt."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s#]+)", line.strip())
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(3)
    return found


def test_layer_pins_are_the_versions_the_tests_use() -> None:
    layer = pins(ROOT / "lambdas" / "detect_faces" / "requirements.txt")
    project = pins(ROOT / "requirements.txt")
    assert layer["aws-lambda-powertools"] == project["aws-lambda-powertools"] == version("aws-lambda-powertools")
    for name, pinned in layer.items():
        assert version(name) == pinned, f"{name}: layer pins {pinned}, tests run {version(name)}"


def test_every_requirement_is_pinned() -> None:
    for path in (
        ROOT / "requirements.txt",
        ROOT / "requirements-dev.txt",
        ROOT / "lambdas/detect_faces/requirements.txt",
    ):
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-r"):
                assert "==" in line, f"{path.name}: {line!r} is not pinned"
