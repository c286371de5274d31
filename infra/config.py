"""Stack settings from CDK context (`-c facepipe:key=value`, or a "context" entry in cdk.json or cdk.context.json):
the construct tree's side of infra/settings.py, which reads and validates every `facepipe:` key in plain Python (no
jsii), so that the stack and the tools that must know what a deploy will set read them one way."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from constructs import Construct

from .settings import ContextError, FacepipeSettings

__all__ = ["HANDLER", "LAMBDA_CODE_DIR", "LAYER_DIR", "POWERTOOLS_VERSION", "ContextError", "FacepipeConfig"]

ROOT = Path(__file__).resolve().parent.parent
LAYER_DIR = "build/powertools-layer"
LAMBDA_CODE_DIR = "lambdas"


def pinned_version(requirements: Path, name: str) -> str:
    """The version a requirements file pins `name` at (a `name==X` line)."""
    for line in requirements.read_text().splitlines():
        package, _, pinned = line.split("#", 1)[0].strip().partition("==")
        if pinned and package.strip().lower().replace("_", "-") == name:
            return pinned.strip()
    raise ValueError(f"{requirements} does not pin {name}")


# The layer's Powertools, as lambdas/detect_faces/requirements.txt pins it: the one place it is written.
POWERTOOLS_VERSION = pinned_version(
    ROOT / LAMBDA_CODE_DIR / "detect_faces" / "requirements.txt", "aws-lambda-powertools"
)
HANDLER = "detect_faces.handler.lambda_handler"


class FacepipeConfig(FacepipeSettings):
    """The settings the stack is built with (infra/settings.py's FacepipeSettings), read from a construct's context."""

    @classmethod
    def from_context(cls, scope: Construct) -> Self:
        """The `facepipe:` keys of the context `scope` sees (the CDK CLI has merged the -c flags, cdk.json and
        cdk.context.json into the app's), validated by the plain reader."""
        context: dict[str, object] = scope.node.get_all_context()
        return cls.from_values(context)
