"""Buckets and removal: what `facepipe:removalPolicy` means for every stateful resource."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .config import FacepipeConfig


def removal_policy(config: FacepipeConfig) -> RemovalPolicy:
    return RemovalPolicy.DESTROY if config.removal_policy == "destroy" else RemovalPolicy.RETAIN


def private_bucket(scope: Construct, id: str, config: FacepipeConfig, **props: object) -> s3.Bucket:
    """SSE-S3, SSL-only, public access blocked, ACLs off; deleted with the stack only in `destroy` mode."""
    return s3.Bucket(
        scope,
        id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=removal_policy(config),
        auto_delete_objects=config.removal_policy == "destroy",
        **props,  # type: ignore[arg-type]
    )
