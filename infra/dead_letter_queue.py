"""The dead-letter queue."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from detect_faces.contract import DLQ_RETENTION_SECONDS

from .config import FacepipeConfig
from .removal import removal_policy


class DeadLetterQueue(Construct):
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
