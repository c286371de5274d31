"""What the commands print with: aligned tables, cells of untrusted text on one line, and progress bars on
stderr (shown on a terminal only)."""

from __future__ import annotations

import sys
from typing import Protocol


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def cell(value: object, width: int | None = None) -> str:
    """A table cell of text from anywhere (a DLQ message): one line (control characters escaped), cut to `width`."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in str(value))
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


class ProgressBar(Protocol):
    def update(self, n: int = 1) -> object: ...

    def __enter__(self) -> ProgressBar: ...

    def __exit__(self, *exc: object) -> object: ...


def progress_bar(total: int | None, desc: str) -> ProgressBar:
    from tqdm import tqdm

    bar: ProgressBar = tqdm(total=total, desc=desc, unit="obj", file=sys.stderr, disable=not sys.stderr.isatty())
    return bar
