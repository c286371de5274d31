"""The uploads bucket, with its server-access-log bucket."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .config import FacepipeConfig
from .removal import private_bucket


class UploadsBucket(Construct):
    """Versioned, encrypted, SSL-only, private bucket with server access logs."""

    def __init__(self, scope: Construct, id: str, *, config: FacepipeConfig) -> None:
        super().__init__(scope, id)
        self.access_logs = private_bucket(
            self, "AccessLogs", config, lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))]
        )
        Validations.of(self.access_logs).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1",
                reason="This is the server-access-log bucket; logging it into itself would loop.",
            )
        )
        self.bucket = private_bucket(
            self,
            "Bucket",
            config,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="uploads/",
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))],
        )
