"""FacepipeStack: uploads bucket -> detect_faces -> results table / DLQ, with monitoring."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from detect_faces.contract import (
    OUTPUT_ALARM_TOPIC,
    OUTPUT_BUCKET,
    OUTPUT_DLQ_NAME,
    OUTPUT_DLQ_URL,
    OUTPUT_FUNCTION,
    OUTPUT_OPERATOR_POLICY,
    OUTPUT_TABLE,
)

from .config import FacepipeConfig
from .dead_letter_queue import DeadLetterQueue
from .function import DetectFacesFunction
from .monitoring import Monitoring
from .operators import OperatorPolicy
from .results_table import ResultsTable
from .uploads import UploadsBucket


class FacepipeStack(Stack):
    def __init__(self, scope: Construct, id: str, *, config: FacepipeConfig | None = None, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        self.config = config or FacepipeConfig.from_context(self)
        self.uploads = UploadsBucket(self, "Uploads", config=self.config)
        self.results = ResultsTable(self, "Results", config=self.config)
        self.failures = DeadLetterQueue(self, "DeadLetters", config=self.config)
        self.detector = DetectFacesFunction(
            self,
            "Detector",
            config=self.config,
            bucket=self.uploads.bucket,
            table=self.results.table,
            dlq=self.failures.queue,
        )
        self.monitoring = Monitoring(
            self, "Monitoring", config=self.config, function=self.detector.function, dlq=self.failures.queue
        )
        self.operators = OperatorPolicy(
            self,
            "Operators",
            bucket=self.uploads.bucket,
            table=self.results.table,
            dlq=self.failures.queue,
            function=self.detector.function,
        )
        CfnOutput(self, OUTPUT_BUCKET, value=self.uploads.bucket.bucket_name, description="Upload images here")
        CfnOutput(self, OUTPUT_TABLE, value=self.results.table.table_name, description="Face detection results")
        CfnOutput(self, OUTPUT_DLQ_URL, value=self.failures.queue.queue_url, description="Failure records")
        CfnOutput(self, OUTPUT_DLQ_NAME, value=self.failures.queue.queue_name)
        CfnOutput(self, OUTPUT_FUNCTION, value=self.detector.function.function_name)
        CfnOutput(self, OUTPUT_ALARM_TOPIC, value=self.monitoring.topic.topic_arn)
        CfnOutput(
            self,
            OUTPUT_OPERATOR_POLICY,
            value=self.operators.policy.managed_policy_arn,
            description="Attach to whoever runs the facepipe operator commands",
        )
