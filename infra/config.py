"""Stack settings from CDK context (`-c facepipe:key=value`, or a "context" entry in cdk.json or cdk.context.json):
the construct tree's side of infra/settings.py, which reads and validates every `facepipe:` key in plain Python (no
jsii), so that the stack and the tools that must know what a deploy will set read them one way."""

from __future__ import annotations

from typing import Self

from constructs import Construct

from .settings import ContextError, FacepipeSettings

__all__ = ["HANDLER", "LAMBDA_CODE_DIR", "LAYER_DIR", "POWERTOOLS_VERSION", "ContextError", "FacepipeConfig"]

POWERTOOLS_VERSION = "3.37.0"
LAYER_DIR = "build/powertools-layer"
LAMBDA_CODE_DIR = "lambdas"
HANDLER = "detect_faces.handler.lambda_handler"


class FacepipeConfig(FacepipeSettings):
    """The settings the stack is built with (infra/settings.py's FacepipeSettings), read from a construct's context."""

    @classmethod
    def from_context(cls, scope: Construct) -> Self:
        """The `facepipe:` keys of the context `scope` sees (the CDK CLI has merged the -c flags, cdk.json and
        cdk.context.json into the app's), validated by the plain reader."""
        context: dict[str, object] = scope.node.get_all_context()
        return cls.from_values(context)
