"""The redacted copies in their bucket, written and deleted in outcome order, whoever else writes at the same time
(docs/REDACTION.md, "Order").

A copy is stored under "<source bucket>/<source key>" and carries, as S3 user metadata, the stamp of the outcome it
was made from (sequencer and finished_at) and the source version. Every change is a compare-and-swap:

- write: HEAD the copy; a copy whose stamp is as new or newer stays; otherwise PutObject with `IfMatch=<its ETag>`
  (or `IfNoneMatch="*"` when there is none), so a copy another invocation wrote since the HEAD is never overwritten;
- delete: HEAD the copy; only a copy older than the removal's stamp is deleted, with `IfMatch=<its ETag>`.

When the condition fails (412 PreconditionFailed; 409 ConditionalRequestConflict, S3's answer to a concurrent
conditional write; 404 when the copy vanished under an IfMatch) the decision is made again from a new HEAD, up to
MAX_CONDITIONAL_ATTEMPTS times; then CopyContended fails the invocation and Lambda retries it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from detect_faces.errors import error_code

from .outcomes import Stamp

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import PutObjectRequestTypeDef

logger = Logger(child=True)

# The copy's user metadata (S3 stores x-amz-meta-<name>, lower case). The stamp orders copies; the rest says what
# the copy was made from.
META_SEQUENCER = "facepipe-sequencer"
META_FINISHED_AT = "facepipe-finished-at"
META_SOURCE_VERSION = "facepipe-source-version-id"  # "null" for an unversioned object
META_SOURCE_ETAG = "facepipe-source-etag"
META_REDACTION = "facepipe-redaction"  # "<mode> margin=<margin> faces=<n>"
MAX_KEY_BYTES = 1024  # S3's limit on a key, in UTF-8 bytes
MAX_CONDITIONAL_ATTEMPTS = 4
# A conditional request that lost: decide again from a new HEAD.
LOST_RACE_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404"})
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class Decision(enum.StrEnum):
    WRITTEN = "written"
    DELETED = "deleted"
    SAME = "copy already made from this outcome"
    NEWER = "the copy is from a newer outcome"
    NO_COPY = "no copy to delete"


class CopyContended(Exception):
    """Conditional writes of one copy kept losing to other writers: the invocation fails and Lambda retries it."""


class CopyKeyTooLong(Exception):
    """`<source bucket>/<source key>` is longer than S3 allows a key: this image can have no copy."""

    code = "CopyKeyTooLong"


@dataclass(frozen=True)
class StoredCopy:
    etag: str
    stamp: Stamp


def copy_key(bucket: str, key: str) -> str:
    """Where the copy of s3://bucket/key goes in the redaction bucket."""
    name = f"{bucket}/{key}"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise CopyKeyTooLong(f"the copy's key {bucket}/{key[:60]}... is longer than S3's {MAX_KEY_BYTES} bytes")
    return name


class RedactedCopies:
    """The copies in one bucket."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    def head(self, key: str) -> StoredCopy | None:
        """The copy now stored under `key`, or None. A copy with no stamp (not written by facepipe) is the lowest.
        The role needs s3:ListBucket on this bucket: without it S3 answers 403, not 404, for a missing key."""
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in MISSING_CODES:
                return None
            raise
        metadata = response.get("Metadata", {})
        stamp = Stamp(metadata.get(META_SEQUENCER, ""), metadata.get(META_FINISHED_AT, ""))
        return StoredCopy(etag=str(response["ETag"]), stamp=stamp)

    def put(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str,
        stamp: Stamp,
        metadata: dict[str, str],
        stored: StoredCopy | None,
    ) -> Decision:
        """Store the copy made from the outcome `stamp`, unless the copy stored is as new or newer. `stored` is the
        caller's HEAD of the key; each retry after a lost race makes its own."""
        for attempt in range(MAX_CONDITIONAL_ATTEMPTS):
            if attempt:
                stored = self.head(key)
            if stored is not None and stored.stamp >= stamp:
                return Decision.SAME if stored.stamp == stamp else Decision.NEWER
            params: PutObjectRequestTypeDef = {
                "Bucket": self.bucket,
                "Key": key,
                "Body": body,
                "ContentType": content_type,
                "Metadata": {**metadata, **_stamp_metadata(stamp)},
            }
            if stored is None:
                params["IfNoneMatch"] = "*"
            else:
                params["IfMatch"] = stored.etag
            try:
                self._client.put_object(**params)
            except ClientError as exc:
                if error_code(exc) not in LOST_RACE_CODES:
                    raise
                logger.info("copy changed under a conditional write; deciding again", error_code=error_code(exc),
                            attempt=attempt + 1)  # fmt: skip
                continue
            return Decision.WRITTEN
        raise CopyContended(f"s3://{self.bucket}/{key}: {MAX_CONDITIONAL_ATTEMPTS} conditional writes lost")

    def delete(self, key: str, stamp: Stamp) -> Decision:
        """Delete the copy if it was made from an outcome older than `stamp` (a removal, a rejection, a failure)."""
        for attempt in range(MAX_CONDITIONAL_ATTEMPTS):
            stored = self.head(key)
            if stored is None:
                return Decision.NO_COPY
            if stored.stamp >= stamp:
                return Decision.NEWER
            try:
                self._client.delete_object(Bucket=self.bucket, Key=key, IfMatch=stored.etag)
            except ClientError as exc:
                if error_code(exc) not in LOST_RACE_CODES:
                    raise
                logger.info("copy changed under a conditional delete; deciding again", error_code=error_code(exc),
                            attempt=attempt + 1)  # fmt: skip
                continue
            return Decision.DELETED
        raise CopyContended(f"s3://{self.bucket}/{key}: {MAX_CONDITIONAL_ATTEMPTS} conditional deletes lost")


def _stamp_metadata(stamp: Stamp) -> dict[str, str]:
    return {META_SEQUENCER: stamp.sequencer, META_FINISHED_AT: stamp.finished_at}
