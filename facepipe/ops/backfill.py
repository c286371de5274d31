"""backfill: the objects that were in the bucket before the stack (S3 sent no event for them).

Which objects need it, the rule both engines share (`existing_objects`, `has_result_for`), and the `invoke`
engine: this machine invokes the function once per object, at a rate. The other engine, an S3 Batch Operations
job running the backlog function, is batch_operations/."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from botocore.exceptions import ClientError

from detect_faces.contract import BACKFILL_EVENT_NAME, BACKFILL_EVENT_SOURCE, BACKFILL_SEQUENCER, Status

from .errors import OpsError
from .pacing import RateLimiter
from .targets import Target

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectVersionTypeDef


# Lambda's status for an asynchronous (InvocationType Event) invocation it accepted.
ACCEPTED = 202


@dataclass
class BackfillReport:
    listed: int = 0
    skipped_done: int = 0
    invoked: int = 0
    planned: list[str] = field(default_factory=list)


def existing_objects(s3: S3Client, bucket: str, prefix: str, start_after: str = "") -> Iterator[ObjectVersionTypeDef]:
    """Current versions only (list_object_versions works for unversioned buckets too: VersionId 'null')."""
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            if version.get("IsLatest") and version["Key"] > start_after:
                yield version


def has_result_for(summary: dict[str, Any] | None, obj: ObjectVersionTypeDef) -> bool:
    """The stored summary is a result (DETECTED or REJECTED) for this very object version: by version id in
    a versioned bucket, by ETag in an unversioned one. A tombstone, a failure, or another version's result
    is not, and the object is backfilled."""
    if not summary or summary.get("status") not in (Status.DETECTED, Status.REJECTED):
        return False
    version = obj.get("VersionId")
    if version and version != "null":
        return bool(summary.get("version_id") == version)
    return bool(summary.get("etag")) and summary.get("etag") == str(obj.get("ETag", "")).strip('"')


def backfill_event(bucket: str, obj: ObjectVersionTypeDef, region: str) -> dict[str, Any]:
    """An S3 ObjectCreated record for an object that was there before the stack. Its sequencer is 0, the
    lowest there is, so a real event for the same key always wins and a stored result is never replaced."""
    record_object: dict[str, Any] = {
        "key": quote_plus(obj["Key"], safe="/"),
        "size": obj.get("Size", 0),
        "eTag": str(obj.get("ETag", "")).strip('"'),
        "sequencer": BACKFILL_SEQUENCER,
    }
    if obj.get("VersionId") and obj["VersionId"] != "null":
        record_object["versionId"] = obj["VersionId"]
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": BACKFILL_EVENT_SOURCE,
                "awsRegion": region,
                "eventTime": obj["LastModified"].isoformat() if hasattr(obj.get("LastModified"), "isoformat") else "",
                "eventName": BACKFILL_EVENT_NAME,
                "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": record_object},
            }
        ]
    }


def backfill(
    target: Target,
    uri: str,
    *,
    limiter: RateLimiter,
    dry_run: bool = False,
    start_after: str = "",
    progress: Callable[[int], object] = lambda n: None,
) -> BackfillReport:
    bucket, prefix = target.backfill_location(uri)
    s3, lambda_ = target.client_for("s3"), target.client_for("lambda")
    store = target.results()
    region = s3.meta.region_name
    report = BackfillReport()
    try:
        objects = existing_objects(s3, bucket, prefix, start_after)
        for obj in objects:
            report.listed += 1
            progress(1)
            if has_result_for(store.summary(bucket, obj["Key"]), obj):
                report.skipped_done += 1
                continue
            if dry_run:
                report.planned.append(obj["Key"])
                continue
            limiter.wait()
            response = lambda_.invoke(
                FunctionName=target.function_name,
                InvocationType="Event",
                Payload=json.dumps(backfill_event(bucket, obj, region)).encode(),
            )
            if response.get("StatusCode") != ACCEPTED:
                raise OpsError(f"invoke for {obj['Key']} not accepted (status {response.get('StatusCode')})")
            report.invoked += 1
    except ClientError as exc:
        error = exc.response["Error"]
        raise OpsError(
            f"{error.get('Code')}: {error.get('Message', '')} (after {report.invoked} invoked; rerun to resume)"
        ) from None
    return report
