"""results and show: what the table knows about images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from detect_faces.contract import Status
from detect_faces.results import ImageResult

from .errors import OpsError
from .targets import Target, parse_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import GetObjectRequestTypeDef


def list_results(
    target: Target, where: str = "", *, include_deleted: bool = False, with_faces: bool = False
) -> Iterator[ImageResult]:
    """Every image's result, by bucket, in key order: one Query of the table's by-key index per bucket (summary
    items only); faces are fetched per image only when asked. `where`: s3://bucket/prefix, or a key prefix."""
    store = target.results()
    found = [
        r
        for bucket, prefix in target.where(where)
        for r in store.list_summaries(bucket, prefix)
        if include_deleted or r.status != Status.DELETED
    ]
    for result in found:
        if with_faces and result.face_count:
            yield store.get(result.bucket, result.key) or result
        else:
            yield result


def result_json(result: ImageResult) -> dict[str, Any]:
    return {
        "bucket": result.bucket,
        "key": result.key,
        "version_id": result.version_id,
        "status": result.status,
        "reason": result.reason,
        "face_count": result.face_count,
        "finished_at": result.finished_at,
        "detected_at": result.finished_at,  # the name before 0.3, kept for scripts that read it
        "faces": result.faces,
    }


def show(target: Target, uri: str, out: str | None) -> tuple[str, ImageResult]:
    from facepipe.common.annotate import annotate, save

    bucket, key = parse_s3_uri(uri)
    result = target.results().get(bucket, key)
    if result is None:
        raise OpsError(f"no result for {uri}")
    if result.status != "DETECTED":
        raise OpsError(f"{uri} is {result.status}: {result.reason or 'no faces to draw'}")
    request: GetObjectRequestTypeDef = {"Bucket": bucket, "Key": key}
    if result.version_id:
        request["VersionId"] = result.version_id
    try:
        body = target.client_for("s3").get_object(**request)["Body"].read()
    except ClientError as exc:
        raise OpsError(f"cannot read {uri}: {exc.response['Error'].get('Code')}") from None
    path = out or f"{Path(key).stem}.annotated.png"
    save(annotate(body, result.faces), path)
    return path, result
