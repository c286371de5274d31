"""The buckets the pipeline watches: the uploads bucket the stack creates, or buckets that already exist
(`facepipe:existingBuckets`), each under the key prefixes `facepipe:keyPrefixes` names."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .config import FacepipeConfig
from .nag import acknowledge_verbatim, arn_of, pseudo
from .removal import private_bucket


class WatchedBuckets(Construct):
    """What the function, the operators and the delivery need to know of the watched buckets."""

    buckets: list[s3.IBucket]
    prefixes: tuple[str, ...]

    def object_arns(self) -> list[str]:
        """`bucket/prefix*` for each bucket and prefix: exactly the objects the pipeline may read."""
        return [b.arn_for_objects(f"{p}*") for b in self.buckets for p in self.prefixes]

    def locations(self) -> list[str]:
        return [f"s3://{b.bucket_name}/{p}" for b in self.buckets for p in self.prefixes]

    def nag_object_resources(self) -> list[str]:
        """The object ARNs as cdk-nag names them in an AwsSolutions-IAM5 finding."""
        raise NotImplementedError

    def acknowledge_object_wildcards(self, policy: Construct, reason: str) -> None:
        # verbatim: a watched prefix may hold a space or a bracket, which Validations.acknowledge would rewrite
        for resource in self.nag_object_resources():
            acknowledge_verbatim(policy, f"AwsSolutions-IAM5[Resource::{resource}]", reason)


class UploadsBucket(WatchedBuckets):
    """Versioned, encrypted, SSL-only, private bucket with server access logs."""

    def __init__(self, scope: Construct, id: str, *, config: FacepipeConfig) -> None:
        super().__init__(scope, id)
        self.access_logs = private_bucket(
            self, "AccessLogs", config, lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))]
        )
        Validations.of(self.access_logs).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1",
                reason="This is the server-access-log bucket; logging it into itself would loop.",
            )
        )
        self.bucket = private_bucket(
            self,
            "Bucket",
            config,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="uploads/",
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))],
        )
        self.buckets = [self.bucket]
        self.prefixes = ("",)

    def nag_object_resources(self) -> list[str]:
        return [f"{arn_of(self.bucket)}/*"]


class ExistingBuckets(WatchedBuckets):
    """Buckets the stack attaches to and never owns: it neither creates, changes nor deletes them (only their
    notification configuration gains, and on destroy loses, facepipe's own entries)."""

    def __init__(self, scope: Construct, id: str, *, config: FacepipeConfig) -> None:
        super().__init__(scope, id)
        self.names = config.existing_buckets
        self.buckets = [s3.Bucket.from_bucket_name(self, name, name) for name in self.names]
        self.prefixes = config.watched_prefixes

    def nag_object_resources(self) -> list[str]:
        partition = pseudo(Stack.of(self).partition, "AWS::Partition")
        return [f"arn:{partition}:s3:::{name}/{p}*" for name in self.names for p in self.prefixes]
