"""Synthesis for the infra tests: the app exactly as `cdk synth` builds it, and a view of its template."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


def cdk_json_context(**overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    context.update({f"facepipe:{k}": v for k, v in overrides.items()})
    return context


@dataclass
class Synth:
    template: Any  # aws_cdk.assertions.Template
    raw: dict[str, Any]
    outdir: Path

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.raw["Resources"].items() if v["Type"] == type_}

    def one(self, type_: str) -> tuple[str, dict[str, Any]]:
        found = self.resources(type_)
        assert len(found) == 1, f"expected one {type_}, found {list(found)}"
        return next(iter(found.items()))


def synth(outdir: Path, **overrides: Any) -> Synth:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from app import build_app

    app, stack = build_app(cdk.App(context=cdk_json_context(**overrides), outdir=str(outdir)))
    assembly = app.synth()  # cdk-nag runs here: an unacknowledged finding fails synthesis
    raw = json.loads(Path(assembly.get_stack_by_name(stack.stack_name).template_full_path).read_text())
    return Synth(template=Template.from_json(raw), raw=raw, outdir=outdir)


def cfn_lint(s: Synth) -> str:
    """cfn-lint's findings on a synthesized stack's templates, with the repo's .cfnlintrc.yaml ("" when none)."""
    import subprocess
    import sys

    templates = [str(p) for p in s.outdir.glob("*.template.json")]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), *templates],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if result.returncode == 0 else result.stdout + result.stderr
