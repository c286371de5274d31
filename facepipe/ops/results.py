"""results and show: what the table knows about images."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
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


# The redaction function's stamp on each copy (redaction.copies' S3 user metadata; docs/REDACTION.md, "Order")
COPY_SOURCE_VERSION = "facepipe-source-version-id"  # "null" for an unversioned source
COPY_SEQUENCER = "facepipe-sequencer"
COPY_REDACTION = "facepipe-redaction"  # "<mode> margin=<m> faces=<n>"
_SUFFIX = {"image/png": ".png", "image/jpeg": ".jpg"}


@dataclass(frozen=True)
class RedactedCopy:
    path: str
    uri: str  # s3://<redaction bucket>/<bucket>/<key>
    result: ImageResult
    redaction: str  # the copy's own account of itself: "<mode> margin=<m> faces=<n>"


def show_redacted(target: Target, uri: str, out: str | None) -> RedactedCopy:
    """The redacted copy of `uri`, saved to `out` (its own bytes when the format agrees, re-encoded when `out` asks
    for another); refused when the stack makes no copies, the image has none, or the copy is of another version
    than the one the table names (the redaction function has not caught up: try again)."""
    if not target.redaction_bucket:
        raise OpsError(
            f"{target.description or 'this stack'} makes no redacted copies (facepipe:redaction=off; locally, "
            "`local up --redaction blur`)"
        )
    bucket, key = parse_s3_uri(uri)
    result = target.results().get(bucket, key)
    if result is None:
        raise OpsError(f"no result for {uri}")
    if result.status != Status.DETECTED:
        raise OpsError(f"{uri} is {result.status}: only analysed images have a redacted copy")
    copy_uri = f"s3://{target.redaction_bucket}/{bucket}/{key}"
    try:
        copy = target.client_for("s3").get_object(Bucket=target.redaction_bucket, Key=f"{bucket}/{key}")
    except ClientError as exc:
        code = exc.response["Error"].get("Code")
        if code in {"NoSuchKey", "404"}:
            raise OpsError(f"no redacted copy of {uri} at {copy_uri} (yet: the redaction function may not have run,"
                           " or it failed: see `facepipe failures`)") from None  # fmt: skip
        raise OpsError(f"cannot read {copy_uri}: {code}") from None
    metadata = copy.get("Metadata", {})
    made_from = metadata.get(COPY_SOURCE_VERSION)
    if made_from is not None and made_from != (result.version_id or "null"):
        raise OpsError(
            f"{copy_uri} is the copy of version {made_from}, not of the analysed version {result.version_id or 'null'}"
            " the table names: the redaction function has not caught up yet"
        )
    body = copy["Body"].read()
    suffix = _SUFFIX.get(copy.get("ContentType", ""), Path(key).suffix or ".jpg")
    path = out or f"{Path(key).stem}.redacted{suffix}"
    if Path(path).suffix.lower() in {suffix, ".jpeg" if suffix == ".jpg" else suffix}:
        Path(path).write_bytes(body)  # the copy itself, byte for byte
    else:
        from PIL import Image

        from facepipe.common.annotate import save

        with Image.open(io.BytesIO(body)) as image:
            image.load()
            jpeg = Path(path).suffix.lower() in {".jpg", ".jpeg"}
            save(image.convert("RGB") if jpeg and image.mode not in {"RGB", "L"} else image, path)
    return RedactedCopy(path=path, uri=copy_uri, result=result, redaction=metadata.get(COPY_REDACTION, ""))
