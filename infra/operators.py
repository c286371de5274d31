"""The operators' managed policy: exactly what the operator CLI calls (`facepipe results|show|failures|redrive|
backfill --stack`), on this stack's resources. Attach it to the people or roles that operate the pipeline.

Each statement names the commands that need it; tests/infra/test_permissions.py records the CLI's calls and
proves every one allowed and every action needed.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from detect_faces.contract import INDEX_BY_KEY

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
