"""Local mode: the whole pipeline on one machine, no AWS account.

  embedded AWS (moto server on loopback: S3, DynamoDB, SQS, EventBridge)
  └─ uploads bucket ──notifications──► SQS queue ──► local Lambda runtime ──► detect_faces.handler
       (or ──EventBridge──► rule ──┘)                                         ├─► results table
  DetectFaces emulator (CenterFace) ◄── AWS_ENDPOINT_URL_REKOGNITION ─────────┘─► DLQ
  results table stream ──► outcome events (EventBridge, source facepipe)
       └─ with `redaction` on: rule ──► SQS queue ──► a second local Lambda runtime ──► redaction.handler
                                                       ├─► redacted bucket: <bucket>/<key>
                                                       └─► DLQ

The handlers are the deployed ones, built from the environment exactly as in Lambda. The bucket is subscribed the
way the stack subscribes it (detect_faces.subscriptions); with `existing_bucket`, an unversioned bucket that
another consumer already uses, through CDK's own notification handler (attach.py), which keeps that consumer's
events.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from detect_faces.contract import (
    CLAIM_LEASE_MARGIN_SECONDS,
    OUTCOME_EVENT_SOURCE,
    REDACTION_DEFAULT_MARGIN,
    REDACTION_MODES,
    REDACTION_OFF,
    Delivery,
    EnvVar,
    OutcomeEvent,
)
from detect_faces.settings import Settings
from detect_faces.subscriptions import NOTIFICATION_EVENTS, eventbridge_pattern, notification_form
from facepipe.common.clients import ClientFor

from . import aws, moto_patches
from .attach import BucketAttachment
from .aws import ACCOUNT, FAKE_CREDENTIALS, LOCAL_FUNCTION, local_clients
from .centerface import CenterFaceDetector, FixedDetector
from .emulator import DetectFacesEmulator, RekognitionError
from .outcome_stream import LocalOutcomeEvents
from .runtime import Handler, LocalLambdaRuntime, OnResult, RuntimeSettings
from .state import LocalState

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import NotificationConfigurationTypeDef
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("facepipe.local")


@dataclass
class LocalSettings:
    region: str = "us-east-1"
    face_attributes: str = Settings.face_attributes
    concurrency: int = 4  # the function's reserved concurrency
    retry_attempts: int = 2  # Lambda async retries
    delay_scale: float = 0.01  # Lambda's ~1 min / ~2 min retry delays, scaled
    max_event_age: float = 6 * 3600
    timeout: float = 60.0
    tps: float | None = None  # the emulator's DetectFaces quota (None: unlimited)
    latency: float = 0.0  # seconds the emulator adds to each analysis (Rekognition's own latency)
    detect_max_attempts: int = Settings.detect_max_attempts
    backoff_base_seconds: float = Settings.backoff_base_seconds
    backoff_max_seconds: float = Settings.backoff_max_seconds
    log_level: str = "WARNING"
    notifications: str = Delivery.S3.value  # or "eventbridge", as facepipe:notifications
    # Attach to an existing (unversioned) bucket with another consumer, instead of creating the uploads bucket.
    existing_bucket: str | None = None
    key_prefix: str = ""  # as facepipe:keyPrefixes (one prefix); "" is every key
    events: bool = True  # as facepipe:events: every stored outcome is an event on the embedded EventBridge
    # As facepipe:redaction: off, or how the redaction function hides faces (REDACTION_MODES); needs `events`
    redaction: str = REDACTION_OFF
    redaction_margin: float = REDACTION_DEFAULT_MARGIN  # as facepipe:redactionMargin


REDACTION_CHOICES = (REDACTION_OFF, *REDACTION_MODES)  # LocalSettings.redaction, `local up --redaction`


class LocalPipeline:
    def __init__(
        self,
        settings: LocalSettings | None = None,
        *,
        port: int = 0,
        detector: CenterFaceDetector | FixedDetector | None = None,
        fault: Callable[[dict[str, Any]], RekognitionError | None] | None = None,
        handler: Handler | None = None,
        on_result: OnResult | None = None,
        on_redaction_result: OnResult | None = None,
    ) -> None:
        self.settings = settings or LocalSettings()
        self.port = port
        self._detector = detector
        self._fault = fault
        self._handler = handler
        self._on_result = on_result
        self._on_redaction_result = on_redaction_result
        self._saved_env: dict[str, str | None] = {}
        self.endpoint = ""
        self.rekognition_endpoint = ""
        self.lambda_endpoint = ""
        self.bucket = self.settings.existing_bucket or aws.LOCAL_BUCKET
        self.foreign_queue_url = ""  # the other consumer's queue, with existing_bucket
        self.attachment: BucketAttachment | None = None
        self.table = aws.LOCAL_TABLE
        self.dlq_url = ""
        self.notifications_url = ""
        self._moto: Any = None
        self.emulator: DetectFacesEmulator | None = None
        self.runtime: LocalLambdaRuntime | None = None
        self.outcome_events: LocalOutcomeEvents | None = None
        self.redacted_bucket = ""  # with redaction on: where the copies go
        self.redaction_queue_url = ""
        self.redaction_runtime: LocalLambdaRuntime | None = None

    @property
    def redaction(self) -> bool:
        return self.settings.redaction != REDACTION_OFF

    # ---- clients ---------------------------------------------------------------------------------
    @property
    def client(self) -> ClientFor:
        """Clients for this stack's endpoints, as they are now: `pipeline.client("s3")`."""
        endpoints = {"rekognition": self.rekognition_endpoint, "lambda": self.lambda_endpoint}
        return local_clients(self.settings.region, endpoints, self.endpoint)

    def state(self) -> LocalState:
        """Where this stack is, for the operator commands (`--local`)."""
        return LocalState(
            endpoint=self.endpoint,
            rekognition_endpoint=self.rekognition_endpoint,
            lambda_endpoint=self.lambda_endpoint,
            region=self.settings.region,
            bucket=self.bucket,
            table=self.table,
            dlq_url=self.dlq_url,
            function_name=LOCAL_FUNCTION,
            locations=(f"s3://{self.bucket}/{self.settings.key_prefix}",),
            reports_bucket=aws.LOCAL_REPORTS,
            redacted_bucket=self.redacted_bucket,
            redaction_function_name=aws.LOCAL_REDACTION_FUNCTION if self.redaction_runtime else "",
        )

    @property
    def env(self) -> dict[str, str]:
        """What a shell, or the function, needs to talk to this local stack."""
        return {
            **FAKE_CREDENTIALS,
            "AWS_REGION": self.settings.region,
            "AWS_DEFAULT_REGION": self.settings.region,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_REKOGNITION": self.rekognition_endpoint,
            **({"AWS_ENDPOINT_URL_LAMBDA": self.lambda_endpoint} if self.lambda_endpoint else {}),
        }

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> LocalPipeline:
        from moto.server import ThreadedMotoServer

        if self.settings.redaction not in REDACTION_CHOICES:
            raise ValueError(
                f"redaction must be one of {', '.join(REDACTION_CHOICES)}, got {self.settings.redaction!r}"
            )
        if self.redaction and not self.settings.events:
            raise ValueError("redaction needs the outcome events (events=True): they are what drives it")

        moto_patches.install()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        # moto keeps its state per process: start from empty, as a fresh account would.
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=10)  # noqa: S310 - loopback

        s3 = self.client("s3")
        self.emulator = DetectFacesEmulator(
            s3,
            detector=self._detector or CenterFaceDetector(),
            tps=self.settings.tps,
            fault=self._fault,
            latency=self.settings.latency,
        )
        self.rekognition_endpoint = self.emulator.start(port=self.port + 1 if self.port else 0)

        sqs = self.client("sqs")
        if self.settings.existing_bucket:
            aws.create_bucket(s3, self.bucket, self.settings.region, versioned=False)
            self.foreign_queue_url = aws.create_foreign_consumer(s3, sqs, self.bucket)
        else:
            aws.create_bucket(s3, self.bucket, self.settings.region)
        aws.create_bucket(s3, aws.LOCAL_REPORTS, self.settings.region, versioned=False)
        aws.create_table(self.client("dynamodb"), self.table)
        self.dlq_url = aws.create_dlq(sqs, aws.LOCAL_DLQ)
        self.notifications_url = sqs.create_queue(QueueName=aws.LOCAL_NOTIFICATIONS)["QueueUrl"]
        self._subscribe(s3, sqs)

        self._set_env(
            {
                **self.env,
                **Settings(
                    results_table=self.table,
                    failure_queue_url=self.dlq_url,
                    face_attributes=self.settings.face_attributes,
                    detect_max_attempts=self.settings.detect_max_attempts,
                    backoff_base_seconds=self.settings.backoff_base_seconds,
                    backoff_max_seconds=self.settings.backoff_max_seconds,
                    claim_lease_seconds=int(self.settings.timeout) + CLAIM_LEASE_MARGIN_SECONDS,
                ).to_env(),
                EnvVar.SERVICE_NAME: "facepipe-local",
                EnvVar.METRICS_NAMESPACE: "FacepipeLocal",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_TRACE_DISABLED": "true",
                EnvVar.LOG_LEVEL: self.settings.log_level,
            }
        )
        handler = self._handler or self._deployed_handler()
        self.runtime = LocalLambdaRuntime(
            handler,
            self.client("sqs"),
            self.dlq_url,
            function_arn=f"arn:aws:lambda:{self.settings.region}:{ACCOUNT}:function:{LOCAL_FUNCTION}",
            settings=self._runtime_settings(),
            on_result=self._on_result,
        )
        self.runtime.poll(self.notifications_url)
        self.lambda_endpoint = self.runtime.serve_invoke_api(LOCAL_FUNCTION, port=self.port + 2 if self.port else 0)
        if self.redaction:
            self._start_redaction()
        if self.settings.events:
            self.outcome_events = LocalOutcomeEvents(
                self.client("dynamodb"), self.client("dynamodbstreams"), self.client("events"), self.table
            ).start()
        return self

    def _runtime_settings(self) -> RuntimeSettings:
        """Lambda's async semantics for a local function, as the stack configures every function alike."""
        return RuntimeSettings(
            concurrency=self.settings.concurrency,
            retry_attempts=self.settings.retry_attempts,
            delay_scale=self.settings.delay_scale,
            max_event_age=self.settings.max_event_age,
            timeout=self.settings.timeout,
        )

    def _start_redaction(self) -> None:
        """What the stack adds with facepipe:redaction (infra/redaction.py): the copies' bucket, the function with
        its environment, and a rule on the outcome events invoking it asynchronously. Here the rule's target is a
        queue that a second local runtime reads as Lambda's async queue (retries, then the same DLQ)."""
        from redaction.redact import Mode
        from redaction.settings import RedactionSettings

        s3, sqs, events = self.client("s3"), self.client("sqs"), self.client("events")
        self.redacted_bucket = aws.LOCAL_REDACTED_BUCKET
        if self.redacted_bucket == self.bucket:  # as the stack refuses a watched redaction target
            raise ValueError(f"the redaction bucket {self.redacted_bucket} is the watched bucket")
        aws.create_bucket(s3, self.redacted_bucket, self.settings.region, versioned=False)  # as the stack's
        self.redaction_queue_url = sqs.create_queue(QueueName=aws.LOCAL_REDACTION_QUEUE)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.redaction_queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        pattern = {"source": [OUTCOME_EVENT_SOURCE], "detail-type": [kind.value for kind in OutcomeEvent]}
        events.put_rule(Name=aws.LOCAL_REDACTION_RULE, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=aws.LOCAL_REDACTION_RULE, Targets=[{"Id": "redaction", "Arn": queue_arn}])
        redaction_settings = RedactionSettings(
            bucket=self.redacted_bucket,
            results_table=self.table,
            failure_queue_url=self.dlq_url,
            mode=Mode(self.settings.redaction),
            margin=self.settings.redaction_margin,
        )
        self._set_env(redaction_settings.to_env())
        self.redaction_runtime = LocalLambdaRuntime(
            self._redaction_handler(),
            self.client("sqs"),
            self.dlq_url,
            function_arn=f"arn:aws:lambda:{self.settings.region}:{ACCOUNT}:function:{aws.LOCAL_REDACTION_FUNCTION}",
            settings=self._runtime_settings(),
            on_result=self._on_redaction_result,
        )
        self.redaction_runtime.poll(self.redaction_queue_url)
        assert self.runtime is not None
        self.runtime.serve_also(aws.LOCAL_REDACTION_FUNCTION, self.redaction_runtime)  # for redrive

    @staticmethod
    def _redaction_handler() -> Handler:
        from aws_lambda_powertools.metrics.provider import cold_start

        from redaction import handler

        handler.set_redactor(None)
        handler.get_redactor()  # cold start now, from the environment just set, as in Lambda
        cold_start.is_cold_start = False  # metrics are off here (see _deployed_handler)

        def invoke(event: dict[str, Any], context: Any) -> Any:
            try:
                return handler.lambda_handler(event, context)
            finally:
                handler.metrics.clear_metrics()  # as in _deployed_handler: disabled metrics are dropped

        return invoke

    def _subscribe(self, s3: S3Client, sqs: SQSClient) -> None:
        """Subscribe the function's queue as the stack subscribes the function: the bucket's notifications, or
        EventBridge and a rule on the default bus; the runtime reads the queue as Lambda's async queue."""
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.notifications_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        prefix = self.settings.key_prefix
        if Delivery(self.settings.notifications) == Delivery.EVENTBRIDGE:
            configuration: dict[str, Any] = {"EventBridgeConfiguration": {}}
            events = self.client("events")
            pattern = eventbridge_pattern([self.bucket], (prefix,) if prefix else ())
            events.put_rule(Name="facepipe-s3-events", EventPattern=json.dumps(pattern))
            events.put_targets(Rule="facepipe-s3-events", Targets=[{"Id": "detect-faces", "Arn": queue_arn}])
        else:
            # the filter in the URL-encoded form S3 matches keys in, as the stack writes it (infra/delivery.py)
            rules = [{"Name": "prefix", "Value": notification_form(prefix)}]
            key_filter = {"Filter": {"Key": {"FilterRules": rules}}} if prefix else {}
            configuration = {
                "QueueConfigurations": [
                    {"Events": [e], "QueueArn": queue_arn, **key_filter} for e in NOTIFICATION_EVENTS
                ]
            }
        if not self.settings.existing_bucket:
            # The bucket is the stack's own: CDK's handler manages its configuration whole (Managed: true) and
            # just puts it, which needs no handler code (reading it from aws-cdk-lib costs a second at start-up)
            # (a dict, not the stubs' TypedDict: CDK's handler takes the same configuration below, as JSON)
            s3.put_bucket_notification_configuration(
                Bucket=self.bucket, NotificationConfiguration=cast("NotificationConfigurationTypeDef", configuration)
            )
            return
        self.attachment = BucketAttachment(
            s3, bucket=self.bucket, configuration=configuration, stack_id=aws.LOCAL_STACK_ID
        )
        self.attachment.attach()

    def detach(self) -> None:
        """What `cdk destroy` does to the bucket: remove facepipe's notification entries, keep everyone else's."""
        if self.attachment is not None:
            self.attachment.detach()
            self.attachment = None

    def _deployed_handler(self) -> Handler:
        from aws_lambda_powertools.metrics.provider import cold_start

        from detect_faces import handler

        handler.set_processor(None)
        handler.get_processor()  # cold start now, from the environment, before invocations run in threads
        # Powertools 3.37 prints the ColdStart metric even with POWERTOOLS_METRICS_DISABLED; metrics are off here.
        cold_start.is_cold_start = False

        def invoke(event: dict[str, Any], context: Any) -> Any:
            try:
                return handler.lambda_handler(event, context)
            finally:
                # Powertools 3.37 keeps collecting metrics when POWERTOOLS_METRICS_DISABLED is set and prints
                # them once 100 values pile up; in Lambda one container serves one event at a time and flushes,
                # here many threads share the singleton. Disabled means disabled: drop them.
                handler.metrics.clear_metrics()

        return invoke

    def wait_for_events(self, count: int, timeout: float = 120.0) -> bool:
        """Wait until `count` notifications were accepted and every accepted event has finished."""
        import time

        assert self.runtime is not None
        end = time.monotonic() + timeout
        while self.runtime.stats.accepted < count:
            if time.monotonic() > end:
                return False
            time.sleep(0.05)
        if not self.runtime.wait_idle(max(0.0, end - time.monotonic())):
            return False
        # and every outcome stored so far is on the bus
        if self.outcome_events is not None and not self.outcome_events.wait_idle(max(0.0, end - time.monotonic())):
            return False
        # and the redaction function has acted on every event the bus delivered to it
        return self.redaction_runtime is None or self._wait_redaction_idle(end)

    def _wait_redaction_idle(self, end: float) -> bool:
        """Until the redaction rule's queue is empty (nothing waiting, nothing taken but not yet invoked: the runtime
        deletes a message once it accepted it) and every invocation it accepted has ended."""
        import time

        assert self.redaction_runtime is not None
        sqs = self.client("sqs")
        while True:
            counts = sqs.get_queue_attributes(
                QueueUrl=self.redaction_queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            waiting = counts.get("ApproximateNumberOfMessages", "0")
            taken = counts.get("ApproximateNumberOfMessagesNotVisible", "0")
            if int(waiting) == 0 and int(taken) == 0:
                break
            if time.monotonic() > end:
                return False
            time.sleep(0.05)
        return self.redaction_runtime.wait_idle(max(0.0, end - time.monotonic()))

    def stop(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
        if self.redaction_runtime is not None:
            self.redaction_runtime.stop()
            from redaction import handler as redaction_handler

            redaction_handler.set_redactor(None)
        if self.outcome_events is not None:
            self.outcome_events.stop()
        if self.emulator is not None:
            self.emulator.stop()
        if self._moto is not None:
            self._moto.stop()
        if self._handler is None:
            from detect_faces import handler

            handler.set_processor(None)
        self._restore_env()

    def __enter__(self) -> LocalPipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _set_env(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()


@contextmanager
def running(settings: LocalSettings | None = None, **kwargs: Any) -> Iterator[LocalPipeline]:
    pipeline = LocalPipeline(settings, **kwargs)
    try:
        yield pipeline.start()
    finally:
        pipeline.stop()
