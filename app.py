#!/usr/bin/env python3
"""The CDK app: `npx cdk synth|deploy` (via `make synth` / `make deploy`)."""

from __future__ import annotations

import os

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.stack import FacepipeStack

DEFAULT_STACK_NAME = "Facepipe"


def build_app(app: cdk.App | None = None) -> tuple[cdk.App, FacepipeStack]:
    app = app or cdk.App()
    name = app.node.try_get_context("facepipe:stackName") or DEFAULT_STACK_NAME
    stack = FacepipeStack(
        app,
        name,
        description="facepipe: S3 uploads -> Rekognition DetectFaces -> DynamoDB, failures to an SQS DLQ",
        env=cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")),
    )
    cdk.Tags.of(stack).add("project", "facepipe")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


if __name__ == "__main__":
    application, _ = build_app()
    application.synth()
