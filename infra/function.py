"""The pipeline's functions, one asset and one layer: detect_faces (live uploads: S3 notifications or EventBridge,
Lambda's async config) and the backlog function (S3 Batch Operations' LambdaInvoke). Each has its own
least-privilege role, log group and reserved concurrency; both run the same core (docs/DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Acknowledgment, Aws, Duration, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from detect_faces.contract import BACKLOG_HANDLER, CLAIM_LEASE_MARGIN_SECONDS, METRICS_NAMESPACE, SERVICE_NAME, EnvVar
from detect_faces.settings import Settings

from .config import HANDLER, LAMBDA_CODE_DIR, LAYER_DIR, POWERTOOLS_VERSION, FacepipeConfig
from .removal import removal_policy
from .uploads import WatchedBuckets

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64


@dataclass(frozen=True)
class EntryPoint:
    handler: str
    description: str
    role_description: str
    live: bool  # invoked asynchronously by S3/EventBridge: async config and the DLQ; else by Batch Operations
    reads_summary: bool = False  # GetItem: the backlog reads a missing object's summary (a removal recorded?)


LIVE = EntryPoint(
    HANDLER,
    "S3 upload -> Rekognition DetectFaces -> DynamoDB; failures to the DLQ",
    "detect_faces: DetectFaces, read uploads, write results, send failure records",
    live=True,
)
BACKLOG = EntryPoint(
    BACKLOG_HANDLER,
    "S3 Batch Operations task -> Rekognition DetectFaces -> DynamoDB; failures to the job's report",
    "backlog: DetectFaces, read uploads, write results",
    live=False,
    reads_summary=True,
)


def function_code() -> lambda_.Code:
    """The functions' one asset: lambdas/ as it is (every entry point is a handler in it)."""
    return lambda_.Code.from_asset(
        str(ROOT / LAMBDA_CODE_DIR), exclude=["**/__pycache__", "**/*.pyc", "**/requirements.txt"]
    )


def built_layer(
    scope: Construct, id: str, *, layer_dir: Path, package: str, make_target: str, description: str
) -> lambda_.LayerVersion:
    """A layer the Makefile builds with pip --platform (no Docker) into `layer_dir`: one error naming the target
    when it is not there."""
    if not (layer_dir / "python" / package).is_dir():
        raise FileNotFoundError(
            f"{layer_dir} is missing: run `make {make_target}` (make synth/deploy/test do it for you)"
        )
    return lambda_.LayerVersion(
        scope,
        id,
        code=lambda_.Code.from_asset(str(layer_dir)),
        compatible_runtimes=[RUNTIME],
        # No compatible_architectures: not every region accepts a layer's CompatibleArchitectures, and the
        # layer is built for the function's architecture anyway (tests/infra/test_stack.py checks it).
        description=description,
    )


def function_log_group(scope: Construct, config: FacepipeConfig) -> logs.LogGroup:
    """A function's own log group ("Logs"), kept per facepipe:logRetentionDays and facepipe:removalPolicy."""
    group = logs.LogGroup(scope, "Logs", removal_policy=removal_policy(config))
    # Any retention CloudWatch accepts (validated in settings), not only the enum's names.
    group_cfn = group.node.default_child
    assert isinstance(group_cfn, logs.CfnLogGroup)
    group_cfn.retention_in_days = config.log_retention_days
    return group


def powertools_layer(scope: Construct, id: str) -> lambda_.LayerVersion:
    return built_layer(
        scope,
        id,
        layer_dir=ROOT / LAYER_DIR,
        package="aws_lambda_powertools",
        make_target="layer",
        description=f"aws-lambda-powertools=={POWERTOOLS_VERSION} (no X-Ray SDK)",
    )


class PipelineFunction(Construct):
    """One entry point (LIVE or BACKLOG) with its role, log group and reservation; `layer` shares one."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        entry: EntryPoint,
        config: FacepipeConfig,
        uploads: WatchedBuckets,
        table: dynamodb.ITableV2,
        dlq: sqs.IQueue,
        layer: lambda_.ILayerVersion | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.log_group = function_log_group(self, config)

        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=entry.role_description
        )
        self.log_group.grant_write(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="DetectFaces",
                actions=["rekognition:DetectFaces"],
                resources=["*"],  # DetectFaces has no resource-level permissions
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadUploads",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=uploads.object_arns(),  # each watched bucket, under each watched prefix
            )
        )
        if config.kms_key_arns:
            # Rekognition reads the object with the caller's permissions: an SSE-KMS bucket's key must let the
            # role decrypt, and only through S3 in this region.
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="DecryptUploads",
                    actions=["kms:Decrypt"],
                    resources=list(config.kms_key_arns),
                    conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
                )
            )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteResults",
                actions=[
                    "dynamodb:Query",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:DeleteItem",
                    *(["dynamodb:GetItem"] if entry.reads_summary else []),
                ],
                resources=[table.table_arn],
            )
        )
        # sqs:SendMessage on the DLQ is granted by the live function's on-failure SqsDestination below; the
        # function uses it too. The backlog function sends none: its failures are the job's completion report.

        self.layer = layer or powertools_layer(self, "Powertools")
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=entry.handler,
            code=function_code(),
            layers=[self.layer],
            role=self.role,
            memory_size=config.memory_mb,
            timeout=Duration.seconds(config.timeout_seconds),
            # Each its own reservation: the live one sized to the DetectFaces quota, the backlog one to what is spare
            reserved_concurrent_executions=config.function_concurrency if entry.live else config.backlog_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            description=entry.description,
            environment={
                **Settings(
                    results_table=table.table_name,
                    failure_queue_url=dlq.queue_url,
                    face_attributes=config.face_attributes,
                    detect_max_attempts=config.detect_max_attempts,
                    claim_lease_seconds=config.timeout_seconds + CLAIM_LEASE_MARGIN_SECONDS,
                ).to_env(),
                EnvVar.SERVICE_NAME: SERVICE_NAME,
                EnvVar.METRICS_NAMESPACE: METRICS_NAMESPACE,
                EnvVar.LOG_LEVEL: "INFO",
            },
            # Lambda's async config, for the live function only (None: the property is not set)
            retry_attempts=config.retry_attempts if entry.live else None,
            max_event_age=Duration.seconds(config.max_event_age_seconds) if entry.live else None,
            on_failure=destinations.SqsDestination(dlq) if entry.live else None,
        )
        self._acknowledge(uploads)

    def _acknowledge(self, uploads: WatchedBuckets) -> None:
        policy = self.role.node.find_child("DefaultPolicy")
        assert isinstance(policy, Construct)
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="rekognition:DetectFaces and X-Ray's PutTraceSegments/PutTelemetryRecords support no "
                "resource-level permissions; every other statement is scoped to this stack's resources.",
            ),
        )
        uploads.acknowledge_object_wildcards(
            policy, "The function reads whichever object was uploaded: any key under a watched prefix."
        )
