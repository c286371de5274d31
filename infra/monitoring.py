"""Alarms (DLQ not empty, errors, throttles, async events dropped), an alarm topic, and a dashboard."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from detect_faces.contract import DETECT_FACES_LATENCY, METRICS_NAMESPACE, SERVICE_NAME, Metric

from .config import FacepipeConfig


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: FacepipeConfig,
        function: lambda_.IFunction,
        dlq: sqs.IQueue,
        backlog: lambda_.IFunction | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.topic = sns.Topic(self, "AlarmTopic", display_name="facepipe alarms", enforce_ssl=True)
        Validations.of(self.topic).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SNS2",
                reason="Alarm notifications carry only alarm names and states; CloudWatch cannot publish to a "
                "topic encrypted with the AWS-managed SNS key, and a customer key would cost more than it protects.",
            )
        )
        if config.alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(config.alarm_email))

        five_minutes = Duration.minutes(5)
        dlq_visible = dlq.metric_approximate_number_of_messages_visible(period=five_minutes, statistic="Maximum")
        errors = function.metric_errors(period=five_minutes, statistic="Sum")
        throttles = function.metric_throttles(period=five_minutes, statistic="Sum")
        dropped = cw.Metric(
            namespace="AWS/Lambda",
            metric_name="AsyncEventsDropped",
            dimensions_map={"FunctionName": function.function_name},
            period=five_minutes,
            statistic="Sum",
        )
        self.alarms = {
            "DeadLetters": (dlq_visible, "Failure records are waiting in the DLQ: run `python -m facepipe failures`."),
            "Errors": (errors, "detect_faces invocations failed (throttling past retries, AccessDenied, bugs)."),
            "Throttles": (throttles, "Lambda throttled detect_faces: reserved concurrency is exhausted."),
            "AsyncEventsDropped": (dropped, "Lambda dropped S3 events (too old or out of retries) to the DLQ."),
        }
        if backlog is not None:
            # A task's TemporaryFailure/PermanentFailure is an answer, not an error: an error is the function
            # failing (a bug, AccessDenied on the table, a timeout), which Batch Operations counts as a failed task.
            self.alarms["BacklogErrors"] = (
                backlog.metric_errors(period=five_minutes, statistic="Sum"),
                "The backlog function failed (not a task's answer): see its logs; the job's report lists the tasks.",
            )
        action = cw_actions.SnsAction(self.topic)
        self.alarm_constructs: dict[str, cw.Alarm] = {}
        for name, (metric, description) in self.alarms.items():
            alarm = metric.create_alarm(
                self,
                f"{name}Alarm",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            alarm.add_alarm_action(action)
            self.alarm_constructs[name] = alarm

        def app_metric(name: str, label: str, statistic: str = "Sum") -> cw.Metric:
            return cw.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=name,
                dimensions_map={"service": SERVICE_NAME},
                statistic=statistic,
                period=five_minutes,
                label=label,
            )

        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(24))
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Images",
                left=[
                    app_metric(Metric.DETECTED, "detected"),
                    app_metric(Metric.REJECTED, "rejected"),
                    app_metric(Metric.DEAD_LETTERED, "sent to DLQ"),
                    app_metric(Metric.SKIPPED, "duplicate/stale skipped"),
                ],
                width=12,
            ),
            cw.GraphWidget(title="Faces found", left=[app_metric(Metric.FACES, "faces")], width=12),
            cw.GraphWidget(
                title="DetectFaces: throttling and latency",
                left=[
                    app_metric(Metric.THROTTLED_RETRIES, "DetectFaces throttled retries"),
                    throttles.with_(label="Lambda throttles"),
                ],
                right=[
                    app_metric(DETECT_FACES_LATENCY, "DetectFaces p50 (ms)", "p50"),
                    app_metric(DETECT_FACES_LATENCY, "DetectFaces p99 (ms)", "p99"),
                ],
                width=12,
            ),
            cw.GraphWidget(title="DLQ depth", left=[dlq_visible.with_(label="visible messages")], width=12),
            cw.GraphWidget(
                title="Duration (ms)",
                left=[
                    function.metric_duration(statistic="p50", period=five_minutes, label="p50"),
                    function.metric_duration(statistic="p99", period=five_minutes, label="p99"),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Errors", left=[errors.with_(label="errors"), dropped.with_(label="async dropped")], width=12
            ),
        )
        if backlog is not None:
            self.dashboard.add_widgets(
                cw.GraphWidget(
                    title="Backlog (S3 Batch Operations tasks)",
                    left=[
                        app_metric(Metric.BACKLOG_SUCCEEDED, "succeeded"),
                        app_metric(Metric.BACKLOG_TEMPORARY_FAILURE, "temporary failure (retried by the job)"),
                        app_metric(Metric.BACKLOG_PERMANENT_FAILURE, "permanent failure"),
                    ],
                    right=[backlog.metric_errors(period=five_minutes, statistic="Sum", label="function errors")],
                    width=24,
                )
            )
