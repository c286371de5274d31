#!/usr/bin/env python3
"""The CDK app: `npx cdk synth|deploy` (via `make synth` / `make deploy`), or `python app.py` directly.

Run directly, the app reads the context itself as the CDK CLI would merge it (cdk.json, cdk.context.json,
~/.cdk.json: infra/settings.py), so both synthesize the same template; a configuration mistake stops synthesis with
one line naming the context key or setting.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import ContextError, FacepipeConfig
from infra.settings import merged_context
from infra.stack import FacepipeStack

ROOT = Path(__file__).resolve().parent


class SetupError(Exception):
    """Something outside the context keys is not right for a deploy (a region, a missing build step)."""


def check_region(region: str | None) -> None:
    """Rekognition reads S3 objects only in its own region, and the bucket is created in the stack's."""
    if not region:
        return
    import botocore.session

    offered = botocore.session.get_session().get_available_regions("rekognition")
    if region not in offered:
        raise SetupError(
            f"region {region} does not offer Amazon Rekognition; set AWS_REGION to one that does "
            f"(e.g. {', '.join(sorted(offered)[:4])}, ...)"
        )


def build_app(app: cdk.App | None = None) -> tuple[cdk.App, FacepipeStack]:
    app = app or cdk.App()
    config = FacepipeConfig.from_context(app)
    region = os.environ.get("CDK_DEFAULT_REGION")
    check_region(region)
    stack = FacepipeStack(
        app,
        config.stack_name,
        config=config,
        description="facepipe: S3 uploads -> Rekognition DetectFaces -> DynamoDB, failures to an SQS DLQ",
        env=cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=region),
    )
    cdk.Tags.of(stack).add("project", "facepipe")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def standalone_app() -> cdk.App:
    """`python app.py` without the CDK CLI: the context as the CLI merges it (cdk.json's feature flags included),
    cdk.out/, and the region from the environment as the CLI resolves it."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region and not os.environ.get("CDK_DEFAULT_REGION"):
        os.environ["CDK_DEFAULT_REGION"] = region
    return cdk.App(context=merged_context(ROOT), outdir=os.environ.get("CDK_OUTDIR") or str(ROOT / "cdk.out"))


def main() -> int:
    try:
        application, _ = build_app(None if "CDK_CONTEXT_JSON" in os.environ else standalone_app())
        application.synth()
    except (ContextError, SetupError, FileNotFoundError) as exc:
        sys.stderr.write(f"facepipe: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
