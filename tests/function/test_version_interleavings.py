"""A randomized comparison of the real handler against S3 itself: any interleaving of puts, delete markers,
version deletes and undeletes, their events delivered late, twice, or after failed and killed attempts (Lambda's
retries), and backfills, ends with the stored outcome being the current version's result, or DELETED when the key
has no current version (docs/DESIGN.md, "Ordering and ownership of an image").

S3 is moto's versioned bucket, so HEAD and GET answer as S3 does; DetectFaces answers from that bucket too, with a
face whose BoundingBox.Left tells which version it saw, so a result of the wrong version cannot pass.
"""

from __future__ import annotations

import itertools
import json
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from detect_faces import handler
from detect_faces.results import ResultsStore
from detect_faces.retry import Backoff
from detect_faces.settings import Settings
from facepipe.ops.backfill import backfill_event, existing_objects
from tests.helpers import (
    BUCKET,
    JPEG_BYTES,
    REGION,
    TABLE,
    Clock,
    FakeContext,
    SandboxKilled,
    moto_aws,
    s3_event,
    s3_record,
)

pytestmark = pytest.mark.integration

KEY = "k.jpg"


@dataclass
class Delivery:
    """One event S3 sent, waiting to be delivered; `request_id` is the invocation Lambda retries with."""

    record: dict[str, Any]
    request_id: str


class Rekognition:
    """DetectFaces on moto's bucket: the version's bytes, or Rekognition's error when it has none. `fail_next`
    makes the next calls throttle (a retry budget spent) or kill the sandbox mid-call."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3
        self.client = boto3.client("rekognition", region_name=REGION)
        # botocore-stubs type every handler as returning None; a before-call handler's answer is the response
        self.client.meta.events.register("before-call.rekognition.DetectFaces", self._answer)  # type: ignore[arg-type]
        self.fail_next: str | None = None
        self.calls = 0

    def _answer(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        self.calls += 1
        if self.fail_next == "kill":
            self.fail_next = None
            raise SandboxKilled()
        if self.fail_next == "throttle":
            return _error(400, "ThrottlingException", "slow down")
        s3_object = json.loads(params["body"])["Image"]["S3Object"]  # the request as serialized
        try:
            kwargs = {"Bucket": s3_object["Bucket"], "Key": s3_object["Name"]}
            if s3_object.get("Version"):
                kwargs["VersionId"] = s3_object["Version"]
            head = self.s3.head_object(**kwargs)
        except Exception:  # any S3 error: Rekognition cannot read it
            return _error(400, "InvalidS3ObjectException", "Unable to get object metadata from S3")
        tag = version_tag(head["VersionId"])
        face = {"BoundingBox": {"Width": 0.1, "Height": 0.1, "Left": tag, "Top": 0.5}, "Confidence": 99.0}
        return AWSResponse("https://rekognition", 200, HTTPHeaders(), None), {"FaceDetails": [face]}


def _error(status: int, code: str, message: str) -> tuple[AWSResponse, dict[str, Any]]:
    return AWSResponse("https://rekognition", status, HTTPHeaders(), None), {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }


_tags: dict[str, float] = {}


def version_tag(version_id: str) -> float:
    """A number unique to a version id, carried by the face DetectFaces reports for it."""
    return _tags.setdefault(version_id, round(0.001 * (len(_tags) + 1), 3))


class VersionInterleavings(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        self.aws = self.stack.enter_context(moto_aws())
        self.rekognition = Rekognition(self.aws.s3)
        self.clock = Clock()
        settings_ = Settings(
            results_table=TABLE,
            failure_queue_url=self.aws.queue_url,
            face_attributes="DEFAULT",
            claim_lease_seconds=90,
        )
        handler.set_processor(
            handler.build_processor(
                s3=self.aws.s3,
                rekognition=self.rekognition.client,
                dynamodb=self.aws.dynamodb,
                sqs=self.aws.sqs,
                settings=settings_,
                backoff=Backoff(max_attempts=2, base_seconds=0, max_seconds=0, sleep=lambda _: None),
                clock=self.clock,
            )
        )
        self.pending: list[Delivery] = []
        self.sequencers = itertools.count(0x00630000000000000)
        self.requests = itertools.count(1)
        self.bodies = itertools.count(1)
        self.versions: list[str] = []  # every version and marker id still in the bucket

    def teardown(self) -> None:
        handler.set_processor(None)
        self.stack.close()

    # ---- what a user does to the key (each action is one event S3 will send) -------------------------------
    def _sent(self, record: dict[str, Any]) -> None:
        self.pending.append(Delivery(record, f"req-{next(self.requests)}"))

    def _sequencer(self) -> str:
        return format(next(self.sequencers) * 0x10, "018X")

    @rule()
    def put(self) -> None:
        body = JPEG_BYTES + str(next(self.bodies)).encode()
        response = self.aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=body)
        self.versions.append(response["VersionId"])
        self._sent(s3_record(BUCKET, KEY, size=len(body), version_id=response["VersionId"],
                             sequencer=self._sequencer(), etag=response["ETag"].strip('"')))  # fmt: skip

    # S3 also puts a marker over a deleted key; moto does not, so a marker is only put over a live object.
    @precondition(lambda self: self.current_version() is not None)
    @rule()
    def delete(self) -> None:
        marker = self.aws.s3.delete_object(Bucket=BUCKET, Key=KEY)["VersionId"]
        self.versions.append(marker)
        self._sent(s3_record(BUCKET, KEY, event_name="ObjectRemoved:DeleteMarkerCreated", version_id=marker,
                             sequencer=self._sequencer()))  # fmt: skip

    @precondition(lambda self: self.versions)
    @rule(data=st.data())
    def delete_version(self, data: st.DataObject) -> None:
        """A version or a delete marker deleted for good: a rollback, an undelete, or an old version pruned."""
        version = data.draw(st.sampled_from(self.versions), label="version deleted for good")
        self.aws.s3.delete_object(Bucket=BUCKET, Key=KEY, VersionId=version)
        self.versions.remove(version)
        self._sent(s3_record(BUCKET, KEY, event_name="ObjectRemoved:Delete", version_id=version,
                             sequencer=self._sequencer()))  # fmt: skip

    # ---- how S3 and Lambda deliver ---------------------------------------------------------------------
    @precondition(lambda self: self.pending)
    @rule(data=st.data(), fault=st.sampled_from([None, None, None, "throttle", "kill"]))
    def deliver(self, data: st.DataObject, fault: str | None) -> None:
        """One pending event, in any order. A fault fails the attempt: the event stays pending, to be retried
        by Lambda with the same request id."""
        index = data.draw(st.integers(0, len(self.pending) - 1), label="event delivered")
        delivery = self.pending[index]
        self.rekognition.fail_next = fault
        if self._invoke(delivery):
            self.pending.pop(index)
        self.rekognition.fail_next = None

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        """S3 delivers at least once: a second copy of an event, as another invocation."""
        delivery = data.draw(st.sampled_from(self.pending), label="event duplicated")
        self.pending.append(Delivery(delivery.record, f"req-{next(self.requests)}"))

    @rule()
    def backfill(self) -> None:
        """An operator's backfill of the key's current version (as `facepipe backfill` lists it)."""
        for obj in existing_objects(self.aws.s3, BUCKET, KEY):
            self._invoke(Delivery(backfill_event(BUCKET, obj, REGION)["Records"][0], f"req-{next(self.requests)}"))

    def _invoke(self, delivery: Delivery) -> bool:
        """True when the invocation succeeded (else Lambda retries it: the lease of a killed attempt lets the same
        request id take its claim back at once, and another request after the lease)."""
        context = FakeContext(aws_request_id=delivery.request_id)
        try:
            handler.lambda_handler(s3_event(delivery.record), context)
        except BaseException:  # a failed attempt, or a killed sandbox: Lambda retries both
            self.clock.advance(1)
            return False
        return True

    # ---- the property -----------------------------------------------------------------------------------
    def current_version(self) -> str | None:
        listing = list(existing_objects(self.aws.s3, BUCKET, KEY))
        return str(listing[0]["VersionId"]) if listing else None

    @invariant()
    def never_a_newer_result_replaced_by_an_older_version(self) -> None:
        """Whatever is pending, a DETECTED result is of a version that is still in the bucket or was the
        current one when stored; and its faces are that version's."""
        image = ResultsStore(self.aws.dynamodb, TABLE).get(BUCKET, KEY)
        if image is not None and image.status == "DETECTED":
            assert [f["BoundingBox"]["Left"] for f in image.faces] == [version_tag(str(image.version_id))]

    def settle(self) -> None:
        """Deliver everything still pending, oldest first, without faults (Lambda's retries succeed in the end);
        a live claim of a killed attempt is waited out."""
        for _ in range(3):
            self.clock.advance(100)  # every killed attempt's lease has run out
            while self.pending:
                delivery = self.pending.pop(0)
                assert self._invoke(delivery), f"delivery failed without a fault: {delivery.record['eventName']}"

    def check_outcome(self) -> None:
        self.settle()
        image = ResultsStore(self.aws.dynamodb, TABLE).get(BUCKET, KEY)
        current = self.current_version()
        if current is None:
            assert image is None or image.status == "DELETED", f"no current version, but stored {image}"
            return
        assert image is not None, "the current version has no result"
        assert (image.status, image.version_id) == ("DETECTED", current)
        assert [f["BoundingBox"]["Left"] for f in image.faces] == [version_tag(current)]


class Settled(VersionInterleavings):
    def teardown(self) -> None:
        try:
            self.check_outcome()
        finally:
            super().teardown()


Settled.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=14,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,  # the same sequences on every run and machine: a red run is reproducible
)
test_every_interleaving_ends_with_the_current_versions_outcome = Settled.TestCase
