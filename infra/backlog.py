"""The backlog engine: the backlog function, the role S3 Batch Operations runs its jobs with, and where the jobs'
manifests and completion reports go (`facepipe backfill --engine batch-operations`, docs/OPERATIONS.md)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from detect_faces.contract import MANIFESTS_PREFIX, REPORTS_PREFIX

from .config import FacepipeConfig
from .function import BACKLOG, PipelineFunction
from .nag import arn_of
from .removal import private_bucket
from .uploads import WatchedBuckets


def reports_bucket(scope: Construct, id: str, config: FacepipeConfig) -> s3.Bucket:
    """A bucket for job manifests and reports when the stack has no log bucket of its own (existing buckets)."""
    bucket = private_bucket(scope, id, config, lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))])
    Validations.of(bucket).acknowledge(
        Acknowledgment(
            id="AwsSolutions-S1",
            reason="It holds Batch Operations manifests and completion reports, written by the job role and the "
            "operators only; S3 server access logs of it would need yet another bucket.",
        )
    )
    return bucket


class Backlog(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: FacepipeConfig,
        uploads: WatchedBuckets,
        table: dynamodb.ITableV2,
        dlq: sqs.IQueue,
        layer: lambda_.ILayerVersion,
        reports: s3.IBucket,
    ) -> None:
        super().__init__(scope, id)
        self.reports = reports
        self.function = PipelineFunction(
            self, "Function", entry=BACKLOG, config=config, uploads=uploads, table=table, dlq=dlq, layer=layer
        ).function
        # Exactly what a job needs (S3 user guide, "Granting permissions for Batch Operations"); every statement
        # is proven against the job's calls in tests/infra/test_permissions.py.
        self.job_role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("batchoperations.s3.amazonaws.com"),
            description="facepipe backlog jobs: invoke the backlog function, read manifests, write reports",
        )
        for statement in [
            iam.PolicyStatement(
                sid="InvokeBacklog",  # the job's LambdaInvoke operation, one task per invocation
                actions=["lambda:InvokeFunction"],
                resources=[self.function.function_arn],
            ),
            iam.PolicyStatement(
                sid="GenerateManifest",  # a manifest S3 generates from a prefix (ManifestGenerator)
                actions=["s3:PutInventoryConfiguration"],
                resources=[b.bucket_arn for b in uploads.buckets],
            ),
            iam.PolicyStatement(
                sid="ReadManifests",  # a CSV manifest the CLI wrote (--manifest csv); the bucket is unversioned
                actions=["s3:GetObject"],
                resources=[reports.arn_for_objects(f"{MANIFESTS_PREFIX}*")],
            ),
            iam.PolicyStatement(
                sid="WriteReports",  # the completion report
                actions=["s3:PutObject"],
                resources=[reports.arn_for_objects(f"{REPORTS_PREFIX}*")],
            ),
        ]:
            self.job_role.add_to_policy(statement)
        policy = self.job_role.node.find_child("DefaultPolicy")
        Validations.of(policy).acknowledge(
            *[
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::{arn_of(reports)}/{prefix}*]",
                    reason="A job reads the manifests and writes the reports of its own prefix: any key under it.",
                )
                for prefix in (MANIFESTS_PREFIX, REPORTS_PREFIX)
            ]
        )
