"""How S3 events reach the function (`facepipe:notifications`): the buckets' own notification configuration, or
EventBridge. Both deliver to the same function through Lambda's asynchronous invocation, so both get the same
retries, maximum event age and on-failure record in the DLQ (docs/CONFIGURATION.md, "Attach to an existing bucket").
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from detect_faces.contract import Delivery
from detect_faces.subscriptions import NOTIFICATION_EVENTS, eventbridge_pattern, notification_form

from .config import FacepipeConfig

# How long EventBridge keeps trying to hand an event to Lambda (it fails only when Lambda refuses the async
# invoke: the function deleted, its resource policy changed). What the function then does with the event is
# Lambda's async config: retries, maximum age, on-failure record (function.py).
EVENTBRIDGE_DELIVERY_ATTEMPTS = 185
EVENTBRIDGE_DELIVERY_MAX_AGE = Duration.hours(24)
# CDK's name for each of the notification event types the function is subscribed to.
EVENT_TYPES = {
    "s3:ObjectCreated:*": s3.EventType.OBJECT_CREATED,
    "s3:ObjectRemoved:*": s3.EventType.OBJECT_REMOVED,
    "s3:LifecycleExpiration:*": s3.EventType.LIFECYCLE_EXPIRATION,
}


class EventDelivery(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: FacepipeConfig,
        buckets: list[s3.IBucket],
        function: lambda_.IFunction,
        dlq: sqs.IQueue,
    ) -> None:
        super().__init__(scope, id)
        self.rule: events.Rule | None = None
        if config.notifications == Delivery.EVENTBRIDGE:
            self._eventbridge(config, buckets, function, dlq)
        else:
            self._notifications(config, buckets, function)
        self._acknowledge_cdk_handler()

    def _acknowledge_cdk_handler(self) -> None:
        for child in Stack.of(self).node.children:  # CDK's singleton that applies the buckets' notification config
            if child.node.id.startswith("BucketNotificationsHandler"):
                Validations.of(child).acknowledge(
                    Acknowledgment(
                        id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                        "AWSLambdaBasicExecutionRole]",
                        reason="CDK's own BucketNotificationsHandler (deploy-time only) writes its logs with the "
                        "basic execution policy; its code and role are not configurable.",
                    )
                )

    def _notifications(self, config: FacepipeConfig, buckets: list[s3.IBucket], function: lambda_.IFunction) -> None:
        """NOTIFICATION_EVENTS (subscriptions.py) under each prefix, the filter in the URL-encoded form S3 matches
        (notification_form: "Camera Uploads/" is "Camera+Uploads/"); the grants and the outputs keep it raw.

        On a bucket the stack did not create, CDK's notification handler merges ours into the bucket's existing
        configuration (other consumers' entries and EventBridge on/off are kept) and removes only ours on destroy:
        tests/infra/test_existing_buckets.py runs that very handler against moto to prove it."""
        target = s3n.LambdaDestination(function)
        for bucket in buckets:
            for prefix in config.watched_prefixes:
                filters = [s3.NotificationKeyFilter(prefix=notification_form(prefix))] if prefix else []
                for event in NOTIFICATION_EVENTS:
                    bucket.add_event_notification(EVENT_TYPES[event], target, *filters)

    def _eventbridge(
        self, config: FacepipeConfig, buckets: list[s3.IBucket], function: lambda_.IFunction, dlq: sqs.IQueue
    ) -> None:
        """EventBridge notifications on each bucket (they coexist with any other consumer of its events), and one
        rule on the default bus for these buckets and prefixes."""
        for bucket in buckets:
            bucket.enable_event_bridge_notification()
        pattern = eventbridge_pattern([b.bucket_name for b in buckets], config.key_prefixes)
        self.rule = events.Rule(
            self,
            "S3Events",
            description="facepipe: S3 Object Created / Object Deleted of the watched buckets and prefixes",
            event_pattern=events.EventPattern(
                source=pattern["source"], detail_type=pattern["detail-type"], detail=pattern["detail"]
            ),
        )
        self.rule.add_target(
            targets.LambdaFunction(
                function,
                retry_attempts=EVENTBRIDGE_DELIVERY_ATTEMPTS,
                max_event_age=EVENTBRIDGE_DELIVERY_MAX_AGE,
                # Only an event EventBridge could not hand to Lambda lands here, as EventBridge's own DLQ message
                # (the event as the body, ERROR_CODE/ERROR_MESSAGE attributes); `failures` and `redrive` read it.
                dead_letter_queue=dlq,
            )
        )
