"""Shared test setup: moto's fake credentials, a fixed region, Powertools quiet but measurable."""

from __future__ import annotations

import os

# Before anything builds a boto3 client. moto's documented fake credentials; never real ones.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "facepipe-test",
        "POWERTOOLS_METRICS_NAMESPACE": "FacepipeTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "LOG_LEVEL": "WARNING",
    }
)
for name in list(os.environ):
    if name.startswith("AWS_ENDPOINT_URL") or name == "AWS_PROFILE":
        del os.environ[name]
