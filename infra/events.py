"""Outcome events: the results table's stream, the events function that turns each stored outcome into one
EventBridge event (source `facepipe`), its queue for what could not be delivered, its alarms, and the event's
schema in an EventBridge schema registry (docs/DESIGN.md, "Outcome events")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_eventschemas as eventschemas
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
from constructs import Construct

from detect_faces.contract import (
    METRICS_NAMESPACE,
    OUTCOME_EVENT_BUS_VARIABLE,
    OUTCOME_EVENT_SOURCE,
    OUTCOME_EVENTS_HANDLER,
    SERVICE_NAME,
    EnvVar,
    OutcomeEvent,
)
from detect_faces.outcome_events import STREAM_FILTER

from .config import FacepipeConfig
from .dead_letter_queue import dead_letter_queue
from .function import ARCHITECTURE, RUNTIME, function_code, function_log_group

ROOT = Path(__file__).resolve().parent.parent
DETAIL_SCHEMA = ROOT / "schemas" / "outcome-event-detail.schema.json"
SCHEMA_NAME = "facepipe@OutcomeEvent"
# How the event source mapping reads the stream: every record from the oldest (TRIM_HORIZON: nothing written before
# the mapping is missed), ten at a time; a failing batch is halved to isolate its record and retried, for as long as
# DynamoDB Streams keeps records (24 h); what still fails lands in the undelivered queue.
BATCH_SIZE = 10
RETRY_ATTEMPTS = 100
MAX_RECORD_AGE = Duration.hours(24)


def registry_schema() -> dict[str, Any]:
    """The event as EventBridge delivers it, in JSON Schema Draft 4 (what the schema registry takes for code
    bindings): the envelope, its four detail-types, and schemas/outcome-event-detail.schema.json as the detail."""
    detail = {k: v for k, v in json.loads(DETAIL_SCHEMA.read_text()).items() if not k.startswith("$")}
    text = {"type": "string"}
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": "OutcomeEvent",
        "type": "object",
        "required": ["detail-type", "source", "detail"],
        "properties": {
            "version": text,
            "id": text,
            "detail-type": {"type": "string", "enum": [kind.value for kind in OutcomeEvent]},
            "source": {"type": "string", "enum": [OUTCOME_EVENT_SOURCE]},
            "account": text,
            "time": {"type": "string", "format": "date-time"},
            "region": text,
            "resources": {"type": "array", "items": text},
            "detail": {"$ref": "#/definitions/OutcomeEventDetail"},
        },
        "definitions": {"OutcomeEventDetail": detail},
    }


class OutcomeEvents(Construct):
    """The events function on the table's stream, publishing to `bus_name` (the default bus when None)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        table: dynamodb.TableV2,
        layer: lambda_.ILayerVersion,
        config: FacepipeConfig,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, id)
        bus_name = config.event_bus or "default"
        self.bus = (
            events.EventBus.from_event_bus_arn(self, "Bus", bus_name)
            if bus_name.startswith("arn:")
            else events.EventBus.from_event_bus_name(self, "Bus", bus_name)
        )
        self.undelivered = dead_letter_queue(
            self, "Undelivered", config, what="the event source mapping's on-failure destination"
        )
        log_group = function_log_group(self, config)
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="facepipe events: read the results table's stream, put outcome events on the bus",
        )
        log_group.grant_write(role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=OUTCOME_EVENTS_HANDLER,
            code=function_code(),
            layers=[layer],
            role=role,
            memory_size=256,
            timeout=Duration.seconds(30),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            description="Results table stream -> one EventBridge event per stored outcome",
            environment={
                OUTCOME_EVENT_BUS_VARIABLE: bus_name,  # PutEvents takes a bus's name or ARN
                EnvVar.SERVICE_NAME: SERVICE_NAME,
                EnvVar.METRICS_NAMESPACE: METRICS_NAMESPACE,
                EnvVar.LOG_LEVEL: "INFO",
            },
        )
        self.bus.grant_put_events_to(role)
        self.function.add_event_source(
            sources.DynamoEventSource(
                table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=BATCH_SIZE,
                bisect_batch_on_error=True,
                retry_attempts=RETRY_ATTEMPTS,
                max_record_age=MAX_RECORD_AGE,
                report_batch_item_failures=True,
                on_failure=sources.SqsDlq(self.undelivered),
                filters=[lambda_.FilterCriteria.filter(STREAM_FILTER)],
            )
        )
        self._acknowledge(role)
        self.registry = eventschemas.CfnRegistry(
            self,
            "Registry",
            registry_name=f"{Stack.of(self).stack_name}-events",
            description="facepipe outcome events (source facepipe): download code bindings from here",
        )
        self.schema = eventschemas.CfnSchema(
            self,
            "Schema",
            registry_name=self.registry.attr_registry_name,
            schema_name=SCHEMA_NAME,
            type="JSONSchemaDraft4",
            content=json.dumps(registry_schema()),
            description="One stored outcome of one image (schemas/outcome-event-detail.schema.json)",
        )
        five_minutes = Duration.minutes(5)
        self.alarms = {
            "EventsUndelivered": (
                self.undelivered.metric_approximate_number_of_messages_visible(
                    period=five_minutes, statistic="Maximum"
                ),
                "Outcome events could not be put on the bus: the queue names the stream records (kept 24 h).",
            ),
            "EventsErrors": (
                self.function.metric_errors(period=five_minutes, statistic="Sum"),
                "The events function failed a batch (the bus refused events, or a bug); the stream is retried.",
            ),
        }
        for name, (metric, description) in self.alarms.items():
            alarm = cw.Alarm(
                self,
                name,
                metric=metric,
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))

    def _acknowledge(self, role: iam.Role) -> None:
        policy = role.node.find_child("DefaultPolicy")
        assert isinstance(policy, Construct)
        Validations.of(policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray's PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level "
                "permissions; the stream's reads are scoped to the results table's stream, PutEvents to the bus.",
            ),
        )
