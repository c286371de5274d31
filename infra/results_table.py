"""The results table (layout: docs/DESIGN.md, names: detect_faces.contract)."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from detect_faces.contract import (
    INDEX_BY_KEY,
    INDEX_PARTITION_KEY,
    INDEX_SORT_KEY,
    TABLE_PARTITION_KEY,
    TABLE_SORT_KEY,
    TTL_ATTRIBUTE,
)

from .config import FacepipeConfig
from .removal import removal_policy


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
            time_to_live_attribute=TTL_ATTRIBUTE,
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=INDEX_BY_KEY,
                    partition_key=dynamodb.Attribute(name=INDEX_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
                    sort_key=dynamodb.Attribute(name=INDEX_SORT_KEY, type=dynamodb.AttributeType.STRING),
                    projection_type=dynamodb.ProjectionType.ALL,
                )
            ],
            # The outcome events are read from it (events.py): an outbox, whatever the writer did after its write.
            dynamo_stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES if config.events else None,
            removal_policy=removal_policy(config),
            deletion_protection=config.removal_policy == "retain",
        )
