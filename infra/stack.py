"""FacepipeStack: uploads bucket -> detect_faces -> results table / DLQ, with monitoring."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from constructs import Construct

from detect_faces.contract import (
    OUTPUT_ALARM_TOPIC,
    OUTPUT_BACKLOG_FUNCTION,
    OUTPUT_BATCH_JOB_ROLE,
    OUTPUT_BUCKET,
    OUTPUT_DLQ_NAME,
    OUTPUT_DLQ_URL,
    OUTPUT_EVENT_BUS,
    OUTPUT_EVENT_SCHEMAS,
    OUTPUT_EVENTS_UNDELIVERED,
    OUTPUT_FUNCTION,
    OUTPUT_NOTIFICATIONS,
    OUTPUT_OPERATOR_POLICY,
    OUTPUT_REDACTED_BUCKET,
    OUTPUT_REDACTION_FUNCTION,
    OUTPUT_REPORTS_BUCKET,
    OUTPUT_TABLE,
    OUTPUT_WATCHED,
)

from .backlog import Backlog, reports_bucket
from .config import FacepipeConfig
from .dead_letter_queue import DeadLetterQueue
from .delivery import EventDelivery
from .events import OutcomeEvents
from .function import LIVE, PipelineFunction
from .monitoring import Monitoring
from .operators import OperatorPolicy
from .redaction import Redaction
from .results_table import ResultsTable
from .uploads import ExistingBuckets, UploadsBucket, WatchedBuckets


class FacepipeStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: FacepipeConfig | None = None,
        description: str | None = None,
        env: Environment | None = None,
    ) -> None:
        super().__init__(scope, id, description=description, env=env)
        self.config = config or FacepipeConfig.from_context(self)
        # The construct ids of the created bucket are those of earlier releases: an upgrade replaces nothing.
        self.uploads: WatchedBuckets = (
            ExistingBuckets(self, "Existing", config=self.config)
            if self.config.existing_buckets
            else UploadsBucket(self, "Uploads", config=self.config)
        )
        self.results = ResultsTable(self, "Results", config=self.config)
        self.failures = DeadLetterQueue(self, "DeadLetters", config=self.config)
        self.detector = PipelineFunction(
            self,
            "Detector",
            entry=LIVE,
            config=self.config,
            uploads=self.uploads,
            table=self.results.table,
            dlq=self.failures.queue,
        )
        self.delivery = EventDelivery(
            self,
            "Delivery",
            config=self.config,
            buckets=self.uploads.buckets,
            function=self.detector.function,
            dlq=self.failures.queue,
        )
        # Batch Operations' manifests and reports go to the stack's log bucket (one is made with existing buckets).
        reports = (
            self.uploads.access_logs
            if isinstance(self.uploads, UploadsBucket)
            else reports_bucket(self, "Reports", self.config)
        )
        self.backlog = Backlog(
            self,
            "Backlog",
            config=self.config,
            uploads=self.uploads,
            table=self.results.table,
            dlq=self.failures.queue,
            layer=self.detector.layer,
            reports=reports,
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=self.config,
            function=self.detector.function,
            dlq=self.failures.queue,
            backlog=self.backlog.function,
        )
        self.outcome_events = (
            OutcomeEvents(
                self,
                "OutcomeEvents",
                table=self.results.table,
                layer=self.detector.layer,
                config=self.config,
                alarm_topic=self.monitoring.topic,
            )
            if self.config.events
            else None
        )
        # Redacted copies, from the outcome events (settings.py refuses redaction without them)
        self.redaction = (
            Redaction(
                self,
                "Redaction",
                config=self.config,
                uploads=self.uploads,
                table=self.results.table,
                dlq=self.failures.queue,
                bus=self.outcome_events.bus,
                powertools=self.detector.layer,
                alarm_topic=self.monitoring.topic,
                access_logs=reports,  # the stack's log bucket
            )
            if self.config.redacts and self.outcome_events is not None
            else None
        )
        self.operators = OperatorPolicy(
            self,
            "Operators",
            uploads=self.uploads,
            table=self.results.table,
            dlq=self.failures.queue,
            function=self.detector.function,
            backlog=self.backlog,
            kms_key_arns=self.config.kms_key_arns,
            redaction=self.redaction,
        )
        CfnOutput(self, OUTPUT_BUCKET, value=self.uploads.buckets[0].bucket_name, description="Upload images here")
        CfnOutput(
            self,
            OUTPUT_WATCHED,
            value=" ".join(self.uploads.locations()),
            description="Every watched s3://bucket/prefix",
        )
        CfnOutput(self, OUTPUT_NOTIFICATIONS, value=self.config.notifications.value)
        CfnOutput(self, OUTPUT_TABLE, value=self.results.table.table_name, description="Face detection results")
        CfnOutput(self, OUTPUT_DLQ_URL, value=self.failures.queue.queue_url, description="Failure records")
        CfnOutput(self, OUTPUT_DLQ_NAME, value=self.failures.queue.queue_name)
        CfnOutput(self, OUTPUT_FUNCTION, value=self.detector.function.function_name)
        CfnOutput(self, OUTPUT_BACKLOG_FUNCTION, value=self.backlog.function.function_arn)
        CfnOutput(self, OUTPUT_BATCH_JOB_ROLE, value=self.backlog.job_role.role_arn)
        CfnOutput(self, OUTPUT_REPORTS_BUCKET, value=reports.bucket_name, description="Batch Operations reports")
        CfnOutput(self, OUTPUT_ALARM_TOPIC, value=self.monitoring.topic.topic_arn)
        if self.outcome_events is not None:
            events = self.outcome_events
            CfnOutput(self, OUTPUT_EVENT_BUS, value=self.config.event_bus or "default",
                      description="Outcome events (source facepipe) go to this bus")  # fmt: skip
            CfnOutput(self, OUTPUT_EVENTS_UNDELIVERED, value=events.undelivered.queue_url,
                      description="Stream batches whose events could not be put on the bus")  # fmt: skip
            CfnOutput(self, OUTPUT_EVENT_SCHEMAS, value=events.registry.attr_registry_name,
                      description="The outcome event's schema (code bindings)")  # fmt: skip
        if self.redaction is not None:
            CfnOutput(self, OUTPUT_REDACTED_BUCKET, value=self.redaction.bucket.bucket_name,
                      description="Redacted copies: s3://<this bucket>/<source bucket>/<source key>")  # fmt: skip
            CfnOutput(self, OUTPUT_REDACTION_FUNCTION, value=self.redaction.function.function_name,
                      description="The redaction function (redrive replays its failure records to it)")  # fmt: skip
        CfnOutput(
            self,
            OUTPUT_OPERATOR_POLICY,
            value=self.operators.policy.managed_policy_arn,
            description="Attach to whoever runs the facepipe operator commands",
        )
