"""The pipeline people usually write first, for comparison: what AWS's own samples look like.

Only the first record; no pre-checks; the SDK's default retries; no idempotency or ordering; every
exception fails the invocation (Lambda's async retries then re-run it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

import boto3


def make_handler(table: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    rekognition = boto3.client("rekognition")  # default retry configuration ("legacy": up to 5 attempts)
    dynamodb = boto3.resource("dynamodb").Table(table)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if "Records" not in event:
            return {}
        record = event["Records"][0]
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
        response = rekognition.detect_faces(Image={"S3Object": {"Bucket": bucket, "Name": key}}, Attributes=["DEFAULT"])
        dynamodb.put_item(
            Item={"pk": f"{bucket}/{key}", "sk": "META", "status": "DETECTED",
                  "faces": json.dumps(response["FaceDetails"])}
        )  # fmt: skip
        return {"faces": len(response["FaceDetails"])}

    return handler
