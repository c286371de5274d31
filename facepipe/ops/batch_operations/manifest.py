"""The CSV manifest of a `backfill --engine batch-operations --manifest csv` job: the current versions under the
prefix that have no result yet, listed here and put in the reports bucket (keys URL-encoded, as Batch Operations'
CSV manifests require). Local mode's emulated job runs the same tasks."""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from botocore.exceptions import ClientError

from detect_faces.contract import MANIFESTS_PREFIX

from ..backfill import existing_objects, has_result_for
from .errors import job_error

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectVersionTypeDef


class SummarySource(Protocol):
    """The results store's summary lookup (detect_faces.results.ResultsStore)."""

    def summary(self, bucket: str, key: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class ManifestLocation:
    """A CSV manifest in S3, as create_job's Manifest.Location names it, and what went into it."""

    bucket: str
    key: str
    object_arn: str
    etag: str  # without quotes, as the API examples give it
    fields: tuple[str, ...]  # ("Bucket", "Key") or ("Bucket", "Key", "VersionId")
    tasks: int  # rows: one task per object
    listed: int  # current versions under the prefix
    skipped: int  # of those, already analysed
    version_id: str | None = None  # the manifest object's own version (a versioned reports bucket)
    written: bool = True  # False: --dry-run, nothing was put

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def manifest_key_for(key: str) -> str:
    """An object key as a Batch Operations CSV manifest (and its tasks' s3Key, and its completion report) carry
    it: URL-encoded (UTF-8, percent-escapes; '/' kept), so a comma, quote or newline in a key cannot break the
    row. A space is %20 and a '+' is %2B, so unquote and unquote_plus both give the key back."""
    return quote(key, safe="/")


def pending_objects(
    s3: S3Client, results: SummarySource, bucket: str, prefix: str
) -> Iterator[tuple[dict[str, Any] | None, ObjectVersionTypeDef]]:
    """Every current version under the prefix, paired with its stored summary (None: nothing stored)."""
    for obj in existing_objects(s3, bucket, prefix):
        yield results.summary(bucket, obj["Key"]), obj


def write_csv_manifest(
    s3: S3Client,
    results: SummarySource,
    bucket: str,
    prefix: str,
    reports_bucket: str,
    *,
    partition: str = "aws",
    name: str | None = None,
    dry_run: bool = False,
) -> ManifestLocation | None:
    """List the current versions under the prefix, leave out the objects that already have a result for that
    very version (backfill's rule, has_result_for), and put the rest as a Batch Operations CSV manifest under
    MANIFESTS_PREFIX of the reports bucket. None when every object already has a result (nothing to do).

    Rows are `bucket,url-encoded-key[,version]`. A manifest must give version ids for all its rows or for none:
    they are given as soon as one object has a real version, and an object written before versioning was
    enabled gets the version id S3 gives it, "null". With --dry-run nothing is put."""
    rows: list[tuple[str, str, str | None]] = []
    listed = skipped = 0
    try:
        for summary, obj in pending_objects(s3, results, bucket, prefix):
            listed += 1
            if has_result_for(summary, obj):
                skipped += 1
                continue
            rows.append((bucket, obj["Key"], obj.get("VersionId")))
    except ClientError as exc:
        raise job_error(exc, f"listing s3://{bucket}/{prefix}") from None
    if not rows:
        return None
    with_versions = any(version not in (None, "", "null") for _, _, version in rows)
    fields: tuple[str, ...] = ("Bucket", "Key", "VersionId") if with_versions else ("Bucket", "Key")
    key = f"{MANIFESTS_PREFIX}{name or _manifest_name(bucket, prefix)}"
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024, mode="w+b") as body:
        for row_bucket, row_key, version in rows:
            line = io.StringIO()
            row = [row_bucket, manifest_key_for(row_key)]
            if with_versions:
                row.append(version or "null")
            csv.writer(line, lineterminator="\n").writerow(row)
            body.write(line.getvalue().encode())
        body.seek(0)
        if dry_run:
            etag, version_id = hashlib.md5(body.read(), usedforsecurity=False).hexdigest(), None
        else:
            try:
                response = s3.put_object(Bucket=reports_bucket, Key=key, Body=body, ContentType="text/csv")
            except ClientError as exc:
                raise job_error(exc, f"writing the manifest s3://{reports_bucket}/{key}") from None
            etag, version_id = str(response["ETag"]).strip('"'), response.get("VersionId")
    return ManifestLocation(
        bucket=reports_bucket,
        key=key,
        object_arn=f"arn:{partition}:s3:::{reports_bucket}/{key}",
        etag=etag,
        fields=fields,
        tasks=len(rows),
        listed=listed,
        skipped=skipped,
        version_id=version_id if version_id and version_id != "null" else None,
        written=not dry_run,
    )


def _manifest_name(bucket: str, prefix: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    where = hashlib.sha256(f"{bucket}/{prefix}".encode()).hexdigest()[:12]
    return f"{bucket}/{stamp}-{where}.csv"
