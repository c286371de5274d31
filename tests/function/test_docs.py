"""The README's layout keeps in step with the tree: every module has its line, and every line has its file.

The layout block is the first fenced block under "## Layout" in README.md. One entry a line: a name, then (aligned
in a column) what it does. A name is one path component; a folder's ends with "/", and the entries under it are indented
two spaces more than it. A folder's line stands for the folder and, for a package, its `__init__.py`.

What the layout must list (`required`): every .py under lambdas/, infra/, facepipe/ and bench/ (a package's
`__init__.py` by its folder's line), every .py at the top (app.py), every schemas/*.json, and each folder of tests/
(not each test file). It may list more (cdk.json, docs/), as long as each entry exists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit  # reads README.md and walks the tree: no AWS, no moto

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MODULE_ROOTS = ("lambdas", "infra", "facepipe", "bench")
# Folders that hold no module of the project: caches, build output, installed packages.
SKIPPED = {"__pycache__", "build", "node_modules", ".venv", "cdk.out", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
ENTRY = re.compile(r"^(?P<indent>\s*)(?P<name>\S+)(?P<what>.*)$")
INDENT = 2


def layout_block(readme: str) -> list[str]:
    """The lines of the first fenced block after the "## Layout" heading."""
    lines = readme.splitlines()
    start = next((n for n, line in enumerate(lines) if line.strip() == "## Layout"), None)
    assert start is not None, "README.md has no '## Layout' heading"
    fences = [n for n in range(start + 1, len(lines)) if lines[n].startswith("```")]
    assert len(fences) >= 2, "README.md's Layout section has no fenced block"
    return lines[fences[0] + 1 : fences[1]]


def parse_layout(block: list[str]) -> tuple[list[str], list[str]]:
    """The paths the block lists (folders end with "/"), and what is wrong with its lines."""
    paths: list[str] = []
    problems: list[str] = []
    parents: list[str] = []  # the folder at each depth above the current line
    for number, line in enumerate(block, 1):
        if not line.strip():
            continue
        match = ENTRY.match(line)
        assert match is not None  # every non-blank line has a first token
        depth, remainder = divmod(len(match["indent"]), INDENT)
        name = match["name"]
        if remainder or "\t" in match["indent"] or depth > len(parents):
            problems.append(f"line {number} ({name}): indent it {INDENT} spaces (no tabs) more than its folder's line")
            continue
        if "/" in name.rstrip("/") or name in ("/", "./"):
            problems.append(f"line {number} ({name}): one path component a line, under its folder's line")
            continue
        if not match["what"].strip():
            problems.append(f"line {number} ({name}): say what it is, after the name")
        del parents[depth:]
        path = "".join(parents) + name
        if path in paths:
            problems.append(f"line {number} ({name}): {path} is listed twice")
        paths.append(path)
        if name.endswith("/"):
            parents.append(name)
    return paths, problems


def walk(folder: Path) -> Iterator[Path]:
    """Every file under `folder`, leaving out SKIPPED folders, hidden ones and *.egg-info."""
    for child in sorted(folder.iterdir()):
        if child.is_dir():
            if child.name not in SKIPPED and not child.name.startswith(".") and not child.name.endswith(".egg-info"):
                yield from walk(child)
        else:
            yield child


def entry_of(path: Path) -> str:
    """A module's layout entry: its path, or for a package's __init__.py its folder's."""
    relative = path.relative_to(ROOT)
    if relative.name == "__init__.py":
        return f"{relative.parent.as_posix()}/"
    return relative.as_posix()


def required(root: Path = ROOT) -> set[str]:
    """What the layout must list, from the tree as it is on disk (tracked or not)."""
    needed = {entry_of(path) for top in MODULE_ROOTS for path in walk(root / top) if path.suffix == ".py"}
    needed |= {path.name for path in root.glob("*.py")}
    needed |= {f"schemas/{path.name}" for path in (root / "schemas").glob("*.json")}
    needed |= {
        f"tests/{child.name}/"
        for child in (root / "tests").iterdir()
        if child.is_dir() and child.name not in SKIPPED and not child.name.startswith(".")
    }
    return needed


def exists(entry: str, root: Path = ROOT) -> bool:
    """A file entry names a file; a folder entry a folder holding something besides caches."""
    path = root / entry
    if entry.endswith("/"):
        return path.is_dir() and any(child.name not in SKIPPED for child in path.iterdir())
    return path.is_file()


@pytest.fixture(scope="module")
def layout() -> list[str]:
    paths, problems = parse_layout(layout_block(README.read_text(encoding="utf-8")))
    assert not problems, "README.md's layout block:\n  " + "\n  ".join(problems)
    return paths


def test_every_module_has_its_line(layout: list[str]) -> None:
    missing = sorted(required() - set(layout))
    assert not missing, "README.md's layout lacks (add a line each, under its folder):\n  " + "\n  ".join(missing)


def test_every_line_has_its_file(layout: list[str]) -> None:
    stale = [entry for entry in layout if not exists(entry)]
    assert not stale, "README.md's layout lists what is not in the tree:\n  " + "\n  ".join(stale)


def test_the_block_format() -> None:
    block = [
        "app.py          the app",
        "infra/          the stack",
        "  stack.py      composes",
        "lambdas/        functions",
        "  fn/           a function",
        "    handler.py  entry point",
        "  other/        another",
        "top.py          back at the top",
    ]
    assert parse_layout(block) == (
        [
            "app.py",
            "infra/",
            "infra/stack.py",
            "lambdas/",
            "lambdas/fn/",
            "lambdas/fn/handler.py",
            "lambdas/other/",
            "top.py",
        ],
        [],
    )
    _, problems = parse_layout(
        ["infra/   the stack", "   odd.py  three spaces", "    deep.py  too deep", "  a/b.py  two parts", "  bare.py"]
    )
    assert [problem.split(" (")[0] for problem in problems] == ["line 2", "line 3", "line 4", "line 5"]


def test_a_package_is_its_folder() -> None:
    assert entry_of(ROOT / "facepipe" / "ops" / "__init__.py") == "facepipe/ops/"
    assert entry_of(ROOT / "facepipe" / "ops" / "doctor.py") == "facepipe/ops/doctor.py"
