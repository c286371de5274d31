"""The shapes of the stack's stateful resources, shared by the CDK stack, local mode and tests.

Keep these in step with infra/: the infra tests assert the synthesized template uses the same values.
"""

from __future__ import annotations

from typing import Any

TABLE_PARTITION_KEY = "pk"
TABLE_SORT_KEY = "sk"
TABLE_TTL_ATTRIBUTE = "expires_at"
# A sparse index of the summary items only (face chunks carry neither attribute): list a bucket's images by key.
INDEX_BY_KEY = "by-key"
INDEX_PARTITION_KEY = "bucket"
INDEX_SORT_KEY = "object_key"
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
LOCAL_BUCKET = "facepipe-uploads"
LOCAL_TABLE = "facepipe-results"
LOCAL_DLQ = "facepipe-dlq"
LOCAL_NOTIFICATIONS = "facepipe-bucket-notifications"


def create_table(dynamodb: Any, name: str) -> None:
    dynamodb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": TABLE_PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": TABLE_SORT_KEY, "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in (TABLE_PARTITION_KEY, TABLE_SORT_KEY, INDEX_PARTITION_KEY, INDEX_SORT_KEY)
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": INDEX_BY_KEY,
                "KeySchema": [
                    {"AttributeName": INDEX_PARTITION_KEY, "KeyType": "HASH"},
                    {"AttributeName": INDEX_SORT_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TABLE_TTL_ATTRIBUTE}
    )


def create_dlq(sqs: Any, name: str) -> str:
    return str(
        sqs.create_queue(QueueName=name, Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)})["QueueUrl"]
    )


def create_bucket(s3: Any, name: str, region: str) -> None:
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
