"""Redacted copies (`facepipe:redaction`, docs/REDACTION.md): the bucket the copies go to (created, or an existing one
that is not watched), the redaction function with its Pillow layer, the rule that hands it every outcome event, its
role (it reads the watched objects and can write only to the redaction bucket) and its errors alarm."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, Aws, Duration, Stack, Validations
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from detect_faces.contract import (
    METRICS_NAMESPACE,
    OUTCOME_EVENT_SOURCE,
    REDACTION_HANDLER,
    SERVICE_NAME,
    EnvVar,
    OutcomeEvent,
    RedactionEnvVar,
)

from .config import LAMBDA_CODE_DIR, FacepipeConfig, pinned_version
from .delivery import EVENTBRIDGE_DELIVERY_ATTEMPTS, EVENTBRIDGE_DELIVERY_MAX_AGE
from .function import ARCHITECTURE, RUNTIME, built_layer, function_code, function_log_group
from .nag import acknowledge_verbatim, arn_of, pseudo
from .removal import private_bucket
from .uploads import WatchedBuckets

ROOT = Path(__file__).resolve().parent.parent
REDACTION_LAYER_DIR = ROOT / "build" / "redaction-layer"
# The layer's Pillow, as lambdas/redaction/requirements.txt pins it (locks/redaction-layer.lock is made from it).
PILLOW_VERSION = pinned_version(ROOT / LAMBDA_CODE_DIR / "redaction" / "requirements.txt", "pillow")
# docs/REDACTION.md, "Figures": the smallest size whose pixel limit (94 MP) decodes the largest image DetectFaces
# reads from S3; a 12 MP JPEG takes ~0.25 s of CPU there, so 60 s covers the Query, the reads and the retries.
MEMORY_MB = 1024
TIMEOUT = Duration.seconds(60)
ACCESS_LOG_PREFIX = "redacted/"


def redaction_layer(scope: Construct, id: str, layer_dir: Path = REDACTION_LAYER_DIR) -> lambda_.LayerVersion:
    """Pillow for Lambda's arm64 Python 3.14, installed by pip --platform (no Docker) into build/redaction-layer."""
    return built_layer(
        scope,
        id,
        layer_dir=layer_dir,
        package="PIL",
        make_target="redaction-layer",
        description=f"pillow=={PILLOW_VERSION} for the redaction function",
    )


class Redaction(Construct):
    """The redacted copies of every image facepipe analysed: only built when `config.redacts`."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: FacepipeConfig,
        uploads: WatchedBuckets,
        table: dynamodb.ITableV2,
        dlq: sqs.IQueue,
        bus: events.IEventBus,
        powertools: lambda_.ILayerVersion,
        alarm_topic: sns.ITopic,
        access_logs: s3.IBucket,
    ) -> None:
        super().__init__(scope, id)
        self.bucket = self._bucket(config, access_logs)
        self.copies_in_findings = self._copies_in_findings(self.bucket, config)
        log_group = function_log_group(self, config)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="redaction: read watched images and their results, write copies to the redaction bucket only",
        )
        log_group.grant_write(self.role)
        self._grant(config, uploads, table)
        self.layer = redaction_layer(self, "Pillow")
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=REDACTION_HANDLER,
            code=function_code(),
            layers=[powertools, self.layer],
            role=self.role,
            memory_size=MEMORY_MB,
            timeout=TIMEOUT,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            description="Outcome event -> a copy of the image with every detected face hidden",
            environment={
                RedactionEnvVar.BUCKET: self.bucket.bucket_name,
                EnvVar.RESULTS_TABLE: table.table_name,
                EnvVar.FAILURE_QUEUE_URL: dlq.queue_url,
                RedactionEnvVar.MODE: config.redaction,
                RedactionEnvVar.MARGIN: repr(config.redaction_margin),
                EnvVar.SERVICE_NAME: SERVICE_NAME,
                EnvVar.METRICS_NAMESPACE: METRICS_NAMESPACE,
                EnvVar.LOG_LEVEL: "INFO",
            },
            # Lambda's async config, as the live function's: what still fails after the retries is a record in the
            # DLQ (SqsDestination also grants sqs:SendMessage on it, which the function's own failure records use).
            retry_attempts=config.retry_attempts,
            max_event_age=Duration.seconds(config.max_event_age_seconds),
            on_failure=destinations.SqsDestination(dlq),
        )
        self.rule = events.Rule(
            self,
            "OutcomeEvents",
            event_bus=bus,
            description="facepipe redaction: every outcome event (source facepipe) to the redaction function",
            event_pattern=events.EventPattern(
                source=[OUTCOME_EVENT_SOURCE], detail_type=[kind.value for kind in OutcomeEvent]
            ),
        )
        self.rule.add_target(
            targets.LambdaFunction(
                self.function,
                retry_attempts=EVENTBRIDGE_DELIVERY_ATTEMPTS,
                max_event_age=EVENTBRIDGE_DELIVERY_MAX_AGE,
                # Only an event EventBridge could not hand to Lambda lands here, as EventBridge's own DLQ message
                # (the event as the body); `failures` and `redrive` read it, as they do for S3 events (delivery.py).
                dead_letter_queue=dlq,
            )
        )
        self.errors_alarm = cw.Alarm(
            self,
            "Errors",
            metric=self.function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description="The redaction function failed an event (S3 or DynamoDB throttling past retries, a "
            "lost race, AccessDenied, a bug); Lambda retries it, then records it in the DLQ.",
        )
        self.errors_alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
        self._acknowledge(config, uploads)

    def _bucket(self, config: FacepipeConfig, access_logs: s3.IBucket) -> s3.IBucket:
        if config.redaction_bucket:
            return s3.Bucket.from_bucket_name(self, "Bucket", config.redaction_bucket)
        # Unversioned: the mirror shows only what the sources still have, so a copy deleted or replaced must be gone,
        # not kept as a noncurrent version (an older version of a copy may hide fewer faces, of an image since
        # rejected); and a conditional write's IfNoneMatch="*" never meets a delete marker.
        return private_bucket(
            self,
            "Bucket",
            config,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=ACCESS_LOG_PREFIX,
        )

    def _grant(self, config: FacepipeConfig, uploads: WatchedBuckets, table: dynamodb.ITableV2) -> None:
        """Each statement scoped to what docs/REDACTION.md's calls need; nothing writes to a watched location."""
        statements = [
            # GetObject with VersionId (a versioned source) or IfMatch (an unversioned one)
            iam.PolicyStatement(
                sid="ReadWatchedImages",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=uploads.object_arns(),
            ),
            # HEAD (authorised as GetObject; a conditional delete needs it too), the conditional put and delete
            iam.PolicyStatement(
                sid="WriteCopies",
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[self.bucket.arn_for_objects("*")],
            ),
            # Without it S3 answers the HEAD of a missing copy with 403, not 404
            iam.PolicyStatement(sid="ListCopies", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn]),
            iam.PolicyStatement(sid="ReadResults", actions=["dynamodb:Query"], resources=[table.table_arn]),
        ]
        if config.kms_key_arns:
            statements.append(
                iam.PolicyStatement(
                    sid="DecryptWatchedImages",
                    actions=["kms:Decrypt"],
                    resources=list(config.kms_key_arns),
                    conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
                )
            )
        for statement in statements:
            self.role.add_to_policy(statement)

    @staticmethod
    def _copies_in_findings(bucket: s3.IBucket, config: FacepipeConfig) -> str:
        """Every copy's ARN (the bucket's /*) as a cdk-nag finding writes it, for narrow acknowledgments."""
        if config.redaction_bucket is None:
            return f"{arn_of(bucket)}/*"
        partition = pseudo(Stack.of(bucket).partition, "AWS::Partition")
        return f"arn:{partition}:s3:::{bucket.bucket_name}/*"

    def _acknowledge(self, config: FacepipeConfig, uploads: WatchedBuckets) -> None:
        policy = self.role.node.find_child("DefaultPolicy")
        assert isinstance(policy, Construct)
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray's PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level "
                "permissions; every other statement is scoped to this stack's resources and the watched objects.",
            ),
        )
        uploads.acknowledge_object_wildcards(
            policy, "The function reads the analysed version of whichever image an outcome names: any watched key."
        )
        acknowledge_verbatim(
            policy,
            f"AwsSolutions-IAM5[Resource::{self.copies_in_findings}]",
            "A copy's key is its source's `<bucket>/<key>`: any key of the redaction bucket, and no other bucket.",
        )
