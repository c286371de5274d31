"""The embedded AWS of local mode: moto's fake credentials, clients for a local endpoint, and the bucket,
table and DLQ created as the stack defines them (names and layout: detect_faces.contract)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import boto3
from botocore.config import Config

from detect_faces import contract
from facepipe.common.clients import ClientFor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType
    from mypy_boto3_sqs import SQSClient

# moto's documented fake credentials: local mode never sees real ones.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
ACCOUNT = "123456789012"  # moto's default account
LOCAL_FUNCTION = "facepipe-local-detect_faces"
LOCAL_BUCKET = "facepipe-uploads"
LOCAL_TABLE = "facepipe-results"
LOCAL_DLQ = "facepipe-dlq"
LOCAL_NOTIFICATIONS = "facepipe-bucket-notifications"
LOCAL_REDACTION_FUNCTION = "facepipe-local-redaction"
LOCAL_REDACTED_BUCKET = "facepipe-redacted"  # the redacted copies (local up --redaction), never a watched bucket
LOCAL_REDACTION_QUEUE = "facepipe-redaction-events"  # the redaction rule's target: the function's async intake
LOCAL_REDACTION_RULE = "facepipe-redaction"
LOCAL_REPORTS = "facepipe-reports"  # the stack's log bucket: Batch Operations manifests and reports
LOCAL_STACK_ID = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/facepipe-local/00000000-0000-0000-0000-000000000000"
# `local up --existing-bucket`: another consumer of that bucket's events, there before facepipe attaches.
FOREIGN_QUEUE = "other-consumer"
FOREIGN_PREFIX = "exports/"


def create_table(dynamodb: DynamoDBClient, name: str) -> None:
    dynamodb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": contract.TABLE_PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": contract.TABLE_SORT_KEY, "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in (
                contract.TABLE_PARTITION_KEY,
                contract.TABLE_SORT_KEY,
                contract.INDEX_PARTITION_KEY,
                contract.INDEX_SORT_KEY,
            )
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": contract.INDEX_BY_KEY,
                "KeySchema": [
                    {"AttributeName": contract.INDEX_PARTITION_KEY, "KeyType": "HASH"},
                    {"AttributeName": contract.INDEX_SORT_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        # As the stack's: the outcome events are read from it (docs/DESIGN.md, "Outcome events")
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": contract.TTL_ATTRIBUTE}
    )


def create_dlq(sqs: SQSClient, name: str) -> str:
    return str(
        sqs.create_queue(QueueName=name, Attributes={"MessageRetentionPeriod": str(contract.DLQ_RETENTION_SECONDS)})[
            "QueueUrl"
        ]
    )


def create_bucket(s3: S3Client, name: str, region: str, *, versioned: bool = True) -> None:
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        # the stubs name each region S3 offers; any other is S3's to refuse (moto's, here)
        where = cast("BucketLocationConstraintType", region)
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": where})
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def create_foreign_consumer(s3: S3Client, sqs: SQSClient, bucket: str) -> str:
    """What an existing bucket often has: another application's notification (here, an SQS queue for new
    objects under exports/). Returns the queue's URL."""
    url = str(sqs.create_queue(QueueName=FOREIGN_QUEUE)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "other-consumer",
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": FOREIGN_PREFIX}]}},
                }
            ]
        },
    )
    return url


# boto3-stubs type boto3.client once per literal service name, so a call naming the service at run time matches
# none of them: local mode builds its clients through this untyped reference, and hands them out as ClientFor
# (local_clients), which types each service's client again.
_new_client: Callable[..., Any] = boto3.client


def local_client(
    service: str, region: str, endpoints: Mapping[str, str], default_endpoint: str, config: Config | None = None
) -> Any:
    """A boto3 client for the local stack: `endpoints` by service (rekognition, lambda), else the moto server."""
    return _new_client(
        service,
        region_name=region,
        endpoint_url=endpoints.get(service) or default_endpoint,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        config=config or Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=50),
    )


def local_clients(
    region: str, endpoints: Mapping[str, str], default_endpoint: str, config: Config | None = None
) -> ClientFor:
    """`local_client` for whichever service is named, typed per service."""

    def client_for(service: str) -> Any:
        return local_client(service, region, endpoints, default_endpoint, config)

    return client_for
