"""The dead-letter queue."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from detect_faces.contract import DLQ_RETENTION_SECONDS

from .config import FacepipeConfig
from .removal import removal_policy


def dead_letter_queue(scope: Construct, id: str, config: FacepipeConfig, *, what: str) -> sqs.Queue:
    """A queue that is itself a dead-letter queue (`what` says whose): encrypted, SSL-only, 14 days."""
    queue = sqs.Queue(
        scope,
        id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=Duration.seconds(DLQ_RETENTION_SECONDS),
        removal_policy=removal_policy(config),
    )
    Validations.of(queue).acknowledge(
        Acknowledgment(
            id="AwsSolutions-SQS3", reason=f"This queue is itself a dead-letter queue ({what}); it needs none."
        )
    )
    return queue


class DeadLetterQueue(Construct):
    """The dead-letter queue: Lambda's on-failure destination and the function's own failure records."""

    def __init__(self, scope: Construct, id: str, *, config: FacepipeConfig) -> None:
        super().__init__(scope, id)
        self.queue = dead_letter_queue(self, "Queue", config, what="Lambda's on-failure destination")
