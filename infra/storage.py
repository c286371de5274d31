"""Stateful parts: the uploads bucket (with its access-log bucket), the results table, the dead-letter queue."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from facepipe.resources import (
    DLQ_RETENTION_SECONDS,
    INDEX_BY_KEY,
    INDEX_PARTITION_KEY,
    INDEX_SORT_KEY,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    TABLE_TTL_ATTRIBUTE,
)

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


class UploadsBucket(Construct):
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


class ResultsTable(Construct):
    """One partition per image (pk = bucket/key), items by sk; on-demand, PITR, encrypted, TTL for tombstones;
    a sparse index of the summary items (bucket, object_key) for listing a bucket's results by key."""

    def __init__(self, scope: Construct, id: str, *, config: FacepipeConfig) -> None:
        super().__init__(scope, id)
        self.table = dynamodb.TableV2(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=TABLE_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=TABLE_SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            time_to_live_attribute=TABLE_TTL_ATTRIBUTE,
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=INDEX_BY_KEY,
                    partition_key=dynamodb.Attribute(name=INDEX_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
                    sort_key=dynamodb.Attribute(name=INDEX_SORT_KEY, type=dynamodb.AttributeType.STRING),
                    projection_type=dynamodb.ProjectionType.ALL,
                )
            ],
            removal_policy=removal_policy(config),
            deletion_protection=config.removal_policy == "retain",
        )


class FailureQueue(Construct):
    """The dead-letter queue: Lambda's on-failure destination and the function's own failure records."""

    def __init__(self, scope: Construct, id: str, *, config: FacepipeConfig) -> None:
        super().__init__(scope, id)
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.seconds(DLQ_RETENTION_SECONDS),
            removal_policy=removal_policy(config),
        )
        Validations.of(self.queue).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="This queue is itself the dead-letter queue (Lambda on-failure destination); it needs none.",
            )
        )
