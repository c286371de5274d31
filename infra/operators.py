"""The operators' managed policy: exactly what the operator CLI calls (`facepipe results|show|failures|redrive|
backfill --stack`), on this stack's resources. Attach it to the people or roles that operate the pipeline.

Each statement names the commands that need it; tests/infra/test_permissions.py records the CLI's calls and
proves every one allowed and every action needed.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Aws, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from detect_faces.contract import INDEX_BY_KEY, MANIFESTS_PREFIX

from .backlog import Backlog
from .nag import acknowledge_verbatim, arn_of, pseudo
from .redaction import Redaction
from .uploads import WatchedBuckets


class OperatorPolicy(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        uploads: WatchedBuckets,
        table: dynamodb.ITableV2,
        dlq: sqs.IQueue,
        function: lambda_.IFunction,
        backlog: Backlog,
        kms_key_arns: tuple[str, ...] = (),
        redaction: Redaction | None = None,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        statements = [
            iam.PolicyStatement(
                sid="FindTheStack",  # every --stack command: the outputs name bucket, table, DLQ and function
                actions=["cloudformation:DescribeStacks"],
                resources=[stack.stack_id],  # this stack's own ARN, id included
            ),
            iam.PolicyStatement(
                sid="ReadResults",  # results (the by-key index), show and results --json (the image), backfill
                actions=["dynamodb:Query", "dynamodb:GetItem"],
                resources=[table.table_arn, f"{table.table_arn}/index/{INDEX_BY_KEY}"],
            ),
            iam.PolicyStatement(
                sid="ReadImages",  # show draws on the analysed version
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=uploads.object_arns(),
            ),
            *(
                [
                    iam.PolicyStatement(
                        sid="DecryptImages",  # show, on an SSE-KMS bucket (facepipe:kmsKeyArns)
                        actions=["kms:Decrypt"],
                        resources=list(kms_key_arns),
                        conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
                    )
                ]
                if kms_key_arns
                else []
            ),
            iam.PolicyStatement(
                sid="ListImages",  # backfill lists the current versions under a prefix
                actions=["s3:ListBucketVersions"],
                resources=[b.bucket_arn for b in uploads.buckets],
                # Under the watched prefixes only, when there are some ("" would match every listing).
                conditions=(
                    {"StringLike": {"s3:prefix": [f"{p}*" for p in uploads.prefixes]}}
                    if all(uploads.prefixes)
                    else None
                ),
            ),
            iam.PolicyStatement(
                sid="ReadAndRedriveFailures",  # failures (read, then visible again), redrive (delete once replayed)
                actions=[
                    "sqs:ReceiveMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                ],
                resources=[dlq.queue_arn],
            ),
            iam.PolicyStatement(
                sid="InvokeTheFunction",  # redrive and backfill (InvocationType=Event)
                actions=["lambda:InvokeFunction"],
                resources=[function.function_arn],
            ),
            iam.PolicyStatement(
                sid="CreateBacklogJobs",  # backfill --engine batch-operations (CreateJob has no resource type)
                actions=["s3:CreateJob"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="FollowBacklogJobs",  # backfill --status, and the job's confirmation (--confirm)
                actions=["s3:DescribeJob", "s3:UpdateJobStatus"],
                resources=[f"arn:{stack.partition}:s3:{stack.region}:{stack.account}:job/*"],
            ),
            iam.PolicyStatement(
                sid="PassTheJobRole",  # CreateJob runs the job with the stack's job role
                actions=["iam:PassRole"],
                resources=[backlog.job_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "batchoperations.s3.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                sid="WriteManifests",  # backfill --engine batch-operations --manifest csv
                actions=["s3:PutObject"],
                resources=[backlog.reports.arn_for_objects(f"{MANIFESTS_PREFIX}*")],
            ),
            *(self._redaction(redaction) if redaction is not None else []),
        ]
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description="facepipe operators: results, show, failures, redrive, backfill on this stack",
            statements=statements,
        )
        uploads.acknowledge_object_wildcards(
            self.policy, "show reads whichever image the operator names: any key under a watched prefix."
        )
        if redaction is not None:
            acknowledge_verbatim(
                self.policy,
                f"AwsSolutions-IAM5[Resource::{redaction.copies_in_findings}]",
                "show --redacted reads whichever copy the operator names: any key of the redaction bucket.",
            )
        Validations.of(self.policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="s3:CreateJob has no resource type: it is granted on * (and the job role it may pass is one).",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:{pseudo(stack.partition, 'AWS::Partition')}:s3:"
                f"{pseudo(stack.region, 'AWS::Region')}:{pseudo(stack.account, 'AWS::AccountId')}:job/*]",
                reason="Job ids are made by S3 when a job is created: any job of this account and region.",
            ),
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{arn_of(backlog.reports)}/{MANIFESTS_PREFIX}*]",
                reason="The CLI writes each job's CSV manifest under the manifests prefix: any key under it.",
            ),
        )

    @staticmethod
    def _redaction(redaction: Redaction) -> list[iam.PolicyStatement]:
        """With redacted copies: show --redacted reads a copy; redrive replays the redaction function's failures."""
        return [
            iam.PolicyStatement(
                sid="ReadRedactedCopies",
                actions=["s3:GetObject"],
                resources=[redaction.bucket.arn_for_objects("*")],
            ),
            iam.PolicyStatement(
                sid="InvokeTheRedactionFunction",
                actions=["lambda:InvokeFunction"],
                resources=[redaction.function.function_arn],
            ),
        ]
