"""What gets installed is what the locks say, and the locks say what the requirements files ask. The Powertools the
tests run is the one the layer ships, its version written once: lambdas/detect_faces/requirements.txt.

`make lock-check` (run by `make lint` and before every install) compares each lock's first line with a checksum of
the inputs and of the lock recipe; these tests check what the pins mean, offline."""

from __future__ import annotations

import ast
import os
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.markers import Marker

pytestmark = pytest.mark.unit  # reads files and the venv's metadata: no synthesis, whatever its folder gives

ROOT = Path(__file__).resolve().parents[2]
POWERTOOLS_SOURCE = ROOT / "lambdas" / "detect_faces" / "requirements.txt"
INPUTS = (ROOT / "requirements.txt", ROOT / "requirements-dev.txt", ROOT / "requirements-nodeps.txt", POWERTOOLS_SOURCE)
LOCKS = ROOT / "locks"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#\\]+)")
LOCKED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path, follow: bool = True) -> dict[str, str]:
    """name -> version of a requirements file's `name==version` lines, and (follow) of the files it includes."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r ") and follow:
            found.update(pins(path.parent / line.removeprefix("-r ").strip()))
        elif match := PIN.match(line):
            found[canonical(match.group(1))] = match.group(3)
    return found


def locked(lock: str) -> dict[str, str]:
    """name -> version of a lock's entries that apply to this interpreter (a universal lock holds some packages
    twice, under exclusive environment markers); every entry has at least one hash."""
    text = (LOCKS / lock).read_text()
    found: dict[str, str] = {}
    for entry in re.split(r"\n(?=\S)", text):
        match = LOCKED.match(entry.splitlines()[0])
        if not match:
            assert entry.startswith("#"), f"{lock}: unexpected line {entry.splitlines()[0]!r}"
            continue
        name, pinned, marker = match.groups()
        assert "--hash=sha256:" in entry, f"{lock}: {name} has no hash"
        if marker is None or Marker(marker).evaluate():
            assert canonical(name) not in found, f"{lock}: {name} twice for this interpreter"
            found[canonical(name)] = pinned
    return found


def runtime_packages() -> set[str]:
    """What the Lambda Python runtime ships, as the Makefile names it (lambda-runtime.lock, never the layer)."""
    match = re.search(r"^RUNTIME_PACKAGES := (.+)$", (ROOT / "Makefile").read_text(), flags=re.MULTILINE)
    assert match, "Makefile: RUNTIME_PACKAGES is gone"
    return {canonical(n) for n in match.group(1).split()}


def test_every_requirement_is_pinned() -> None:
    for path in INPUTS:
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-r "):
                assert PIN.match(line), f"{path.name}: {line!r} is not pinned"


def test_each_lock_holds_its_inputs_pins_and_every_entry_has_hashes() -> None:
    venv, nodeps, layer = locked("venv.lock"), locked("venv-nodeps.lock"), locked("layer.lock")
    for path, lock in ((ROOT / "requirements-dev.txt", venv), (POWERTOOLS_SOURCE, layer)):
        for name, pinned in pins(path).items():
            assert lock.get(name) == pinned, f"{path.name} pins {name}=={pinned}, its lock {lock.get(name)}: make lock"
    assert nodeps == pins(ROOT / "requirements-nodeps.txt")  # installed with --no-deps: nothing else
    assert not set(nodeps) & set(venv)


def test_the_layer_and_the_lambda_runtime_are_locked_at_the_venvs_versions() -> None:
    venv, layer, runtime = locked("venv.lock"), locked("layer.lock"), locked("lambda-runtime.lock")
    assert set(runtime) == runtime_packages()
    assert not set(layer) & runtime_packages()  # the runtime's own, never shadowed by the layer
    for name, pinned in {**layer, **runtime}.items():
        assert venv.get(name) == pinned, f"{name}: layer/runtime lock {pinned}, venv lock {venv.get(name)}"


def test_the_venv_runs_the_locked_versions() -> None:
    for name, pinned in {**locked("venv.lock"), **locked("venv-nodeps.lock")}.items():
        assert version(name) == pinned, f"{name}: locked {pinned}, installed {version(name)}: make venv"


def test_setuptools_builds_the_project_at_the_locked_version() -> None:
    (requirement,) = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert requirement == f"setuptools=={pins(ROOT / 'requirements-dev.txt')['setuptools']}"


def config_powertools_version() -> str:
    """infra/config.py's POWERTOOLS_VERSION: read as written when it is a literal (no jsii start), else imported."""
    tree = ast.parse((ROOT / "infra" / "config.py").read_text())
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "POWERTOOLS_VERSION":
            value = getattr(node, "value", None)
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
            from infra.config import POWERTOOLS_VERSION

            return str(POWERTOOLS_VERSION)
    raise AssertionError("infra/config.py no longer defines POWERTOOLS_VERSION: update this test")


# A Powertools version written down: as a pin, or as a POWERTOOLS_VERSION constant.
WRITTEN = re.compile(
    r"aws[-_]lambda[-_]powertools\s*(?:\[[^\]]*\])?\s*==\s*(\d+(?:\.\d+)+)"
    r"|POWERTOOLS_VERSION\s*(?::\s*\w+\s*)?=\s*[\"'](\d+(?:\.\d+)+)[\"']",
    flags=re.IGNORECASE,
)
NOT_OURS = {".git", ".venv", "build", "node_modules", "cdk.out", "fixtures", "facepipe-demo-output"}


def test_the_powertools_version_is_written_once_and_every_copy_agrees() -> None:
    source = pins(POWERTOOLS_SOURCE, follow=False)["aws-lambda-powertools"]
    for path in INPUTS[:3]:
        assert "aws-lambda-powertools" not in pins(path, follow=False), f"{path.name}: include the layer's list"
    assert config_powertools_version() == source, "infra/config.py: POWERTOOLS_VERSION"
    assert locked("venv.lock")["aws-lambda-powertools"] == locked("layer.lock")["aws-lambda-powertools"] == source
    assert version("aws-lambda-powertools") == source  # the tests run what the layer ships
    written = {}
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d not in NOT_OURS and not d.endswith(".egg-info")]
        for path in (Path(folder) / f for f in files):
            if path.suffix in {".py", ".txt", ".toml", ".md", ".json", ".cfg"} or path.name == "Makefile":
                for match in WRITTEN.finditer(path.read_text(errors="replace")):
                    written[f"{path.relative_to(ROOT)}: {match.group(0)}"] = match.group(1) or match.group(2)
    assert written and all(v == source for v in written.values()), written
