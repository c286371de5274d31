"""Pure logic: settings, sequencers, backoff, chunking, number round-trips, failure records."""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from detect_faces.chunks import chunk_faces, chunk_faces_of, from_dynamo
from detect_faces.contract import BACKFILL_SEQUENCER
from detect_faces.dead_letters import failure_record, sqs_attribute_value
from detect_faces.faces import encode as encode_fpf1
from detect_faces.model import ImageEvent, InvalidEventError, normalize_sequencer
from detect_faces.retry import Backoff
from detect_faces.settings import ConfigurationError, Settings
from facepipe.local.aws import FAKE_CREDENTIALS
from tests.helpers import detect_faces_response, s3_record

pytestmark = pytest.mark.unit

GOOD_ENV = {"RESULTS_TABLE": "t", "FAILURE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q"}


def test_settings_read_the_environment() -> None:
    settings = Settings.from_env({**GOOD_ENV, "FACE_ATTRIBUTES": "all", "DETECT_MAX_ATTEMPTS": "3"})
    assert (settings.results_table, settings.face_attributes, settings.detect_max_attempts) == ("t", "ALL", 3)
    assert Settings.from_env(GOOD_ENV).face_attributes == "DEFAULT"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"FAILURE_QUEUE_URL": GOOD_ENV["FAILURE_QUEUE_URL"]}, "RESULTS_TABLE"),
        ({"RESULTS_TABLE": "t"}, "FAILURE_QUEUE_URL"),
        ({**GOOD_ENV, "FAILURE_QUEUE_URL": "my-queue"}, "FAILURE_QUEUE_URL"),
        ({**GOOD_ENV, "FACE_ATTRIBUTES": "SOME"}, "FACE_ATTRIBUTES"),
        ({**GOOD_ENV, "DETECT_MAX_ATTEMPTS": "many"}, "DETECT_MAX_ATTEMPTS"),
        ({**GOOD_ENV, "DETECT_MAX_ATTEMPTS": "0"}, "DETECT_MAX_ATTEMPTS"),
        ({**GOOD_ENV, "DETECT_BACKOFF_BASE_SECONDS": "-1"}, "DETECT_BACKOFF_BASE_SECONDS"),
    ],
)
def test_bad_settings_fail_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        Settings.from_env(env)


def test_sequencers_compare_right_padded_as_the_s3_user_guide_says() -> None:
    # "To compare these values, first right pad the shorter value with zeros, and then do a lexicographical
    # comparison." (S3 user guide, Event message structure)
    assert normalize_sequencer("0055A1F0") < normalize_sequencer("0055B2")
    assert normalize_sequencer("FF") > normalize_sequencer("100")
    assert normalize_sequencer("0055b2") == normalize_sequencer("0055B200") == normalize_sequencer("0055B2")
    # EventBridge's 16 digits against a notification's 18, for one moment of one key
    assert normalize_sequencer("0055AED6DCD90281") < normalize_sequencer("0055AED6DCD90281E5")
    # longer than the stored width: only trailing zeros are dropped, so the order holds
    long = "1" + "0" * 45 + "1"
    assert normalize_sequencer("1" + "0" * 50) < normalize_sequencer(long) < normalize_sequencer("2")


@pytest.mark.parametrize("bad", ["0x1", "-1", "1_0", "+F", "\u0661\u0662", " 1", "1 ", "", "G1", 16, 1.5])
def test_sequencers_are_parsed_strictly_as_hex_digits(bad: object) -> None:
    with pytest.raises(InvalidEventError, match="sequencer"):
        normalize_sequencer(bad)  # type: ignore[arg-type]


def test_the_backfill_sequencer_loses_to_every_real_one() -> None:
    lowest = normalize_sequencer(BACKFILL_SEQUENCER)
    assert lowest == normalize_sequencer(None) == "0" * 40
    for real in ("1", "00000000000000000001", "0055AED6DCD90281E5", "8" + "0" * 60 + "1"):
        assert lowest < normalize_sequencer(real)


def test_event_records_are_decoded_once() -> None:
    event = ImageEvent.from_record(s3_record("b", "a b+c%d.jpg", version_id="v1"))
    assert (event.ref.key, event.ref.version_id, event.event_name) == ("a b+c%d.jpg", "v1", "ObjectCreated:Put")
    with pytest.raises(InvalidEventError):
        ImageEvent.from_record({"eventName": "ObjectCreated:Put"})


def test_backoff_uses_full_jitter_with_a_doubling_cap() -> None:
    backoff = Backoff(max_attempts=10, base_seconds=0.5, max_seconds=4.0, rng=random.Random(1))
    for attempt in range(8):
        cap = min(4.0, 0.5 * 2**attempt)
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8  # spreads over the whole window, not a fixed pause


def test_backoff_gives_up_after_max_attempts_and_raises_the_last_error() -> None:
    sleeps: list[float] = []
    calls = []

    def always_busy() -> None:
        calls.append(1)
        raise TimeoutError(f"busy {len(calls)}")

    backoff = Backoff(max_attempts=4, base_seconds=0.1, max_seconds=1, sleep=sleeps.append)
    with pytest.raises(TimeoutError, match="busy 4"):
        backoff.call(always_busy, retryable=lambda e: True)
    assert (len(calls), len(sleeps)) == (4, 3)


def test_backoff_does_not_retry_what_is_not_retryable() -> None:
    backoff = Backoff(max_attempts=4, base_seconds=0.1, max_seconds=1, sleep=lambda s: None)
    calls = []

    def broken() -> None:
        calls.append(1)
        raise KeyError("no")

    with pytest.raises(KeyError):
        backoff.call(broken, retryable=lambda e: isinstance(e, TimeoutError))
    assert len(calls) == 1


def test_backoff_never_sleeps_past_the_deadline() -> None:
    sleeps: list[float] = []
    backoff = Backoff(max_attempts=10, base_seconds=1, max_seconds=1, sleep=sleeps.append, rng=random.Random(3))
    remaining = iter([30.0, 5.5, 5.2])

    def busy() -> None:
        raise TimeoutError

    with pytest.raises(TimeoutError):
        backoff.call(busy, retryable=lambda e: True, remaining_seconds=lambda: next(remaining))
    assert len(sleeps) <= 2


def test_a_hundred_faces_with_all_attributes_fit_one_chunk_any_language_reads() -> None:
    faces = detect_faces_response(100, attributes="ALL")["FaceDetails"]
    (blob,) = chunk_faces(faces)
    assert len(blob) < 110_000  # ~105 write units, where DynamoDB numbers took ~350
    # the standard library alone reads it: gzip, then JSON; no facepipe decoder
    assert json.loads(gzip.decompress(blob)) == faces
    assert json.dumps(json.loads(gzip.decompress(blob))) == json.dumps(faces)  # the same values, keys and order
    assert chunk_faces([]) == []


def test_chunks_split_under_the_limit_and_keep_order() -> None:
    faces = detect_faces_response(100, attributes="ALL")["FaceDetails"]
    chunks = chunk_faces(faces, limit=20_000)
    assert len(chunks) >= 4 and all(len(c) <= 20_000 for c in chunks)
    assert [f for c in chunks for f in json.loads(gzip.decompress(c))] == faces


def test_every_value_reads_back_exactly_whatever_it_is() -> None:
    # Values float32 cannot carry, signed zero, tiny and huge numbers, ints, booleans, control characters and
    # non-ASCII text, nulls, empty containers
    faces = detect_faces_response(3, attributes="ALL")["FaceDetails"]
    faces[0]["Confidence"] = 99.99999237060547
    faces[1]["Confidence"] = 1e-07
    faces[2]["Pose"]["Yaw"] = -0.0
    faces[2]["Odd"] = {"s": "\0n", "t": "größe\u2028", "none": None, "big": 1e300, "list": [], "map": {}, "n": 7}
    (blob,) = chunk_faces(faces)
    back = chunk_faces_of({"faces_json_gzip": blob})
    assert back == faces
    assert repr(back[0]["Confidence"]) == "99.99999237060547"
    assert isinstance(back[0]["AgeRange"]["Low"], int) and back[0]["Smile"]["Value"] in (True, False)
    assert str(back[2]["Pose"]["Yaw"]) == "-0.0" and back[2]["Odd"]["s"] == "\0n" and back[2]["Odd"]["none"] is None


def test_results_written_by_earlier_versions_still_read_back_exactly() -> None:
    faces = detect_faces_response(5, attributes="ALL")["FaceDetails"]
    legacy = json.loads(json.dumps(faces), parse_float=Decimal)  # how items before 0.2 stored FaceDetails
    assert chunk_faces_of({"faces": legacy}) == faces
    assert chunk_faces_of({"faces_fpf1": encode_fpf1(faces)}) == faces  # 0.2's FPF1 chunks
    assert repr(from_dynamo(Decimal("99.99999237060547"))) == "99.99999237060547"


def test_failure_record_has_lambda_destination_shape() -> None:
    raw = s3_record("b", "k.jpg")
    record = failure_record(
        {"Records": [raw]},
        error_type="InvalidS3ObjectException",
        error_message="gone",
        request_id="r-1",
        function_arn="arn:aws:lambda:us-east-1:1:function:f",
        now=datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
    )
    assert record["timestamp"] == "2026-11-28T12:00:00.000Z"
    assert record["requestContext"]["requestId"] == "r-1"
    assert record["requestPayload"] == {"Records": [raw]}
    assert record["responsePayload"] == {"errorType": "InvalidS3ObjectException", "errorMessage": "gone"}


def test_lazy_client_is_built_once_on_first_use() -> None:
    from detect_faces.handler import LazyClient

    built = []

    class Client:
        def send_message(self, **kwargs: object) -> str:
            return "sent"

    def factory() -> Client:
        built.append(1)
        return Client()

    lazy = LazyClient(factory)
    assert built == []  # nothing at cold start
    assert lazy.send_message(QueueUrl="q") == "sent"
    assert lazy.send_message(QueueUrl="q") == "sent"
    assert built == [1]


def test_sqs_attribute_values_keep_printable_text_and_replace_what_sqs_refuses() -> None:
    assert sqs_attribute_value("año/ひ 😀.jpg") == "año/ひ 😀.jpg"
    assert sqs_attribute_value("a\x00b\x07c\ud800.jpg") == "a\ufffdb\ufffdc\ufffd.jpg"
    assert sqs_attribute_value("tab\tnew\nline\r") == "tab\tnew\nline\r"
    assert len(sqs_attribute_value("k" * 5000)) == 1024
    assert sqs_attribute_value("") == "-"  # SQS refuses an empty value


PROBE = """
import json, sys

class Watch:  # records every attempt to import the X-Ray SDK (or its wrapt), installed or not
    tried = []
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("aws_xray_sdk", "wrapt"):
            self.tried.append(name)
        return None

sys.meta_path.insert(0, Watch())
import botocore.client
created = []
original = botocore.client.ClientCreator.create_client
def counting(self, service_name, *args, **kwargs):
    created.append(service_name)
    return original(self, service_name, *args, **kwargs)
botocore.client.ClientCreator.create_client = counting

from detect_faces import handler
processor = handler.build_processor()
at_build = list(created)
processor.rekognition._client.meta  # the first record needs Rekognition's region: the client is built then
print(json.dumps({"xray": Watch.tried, "clients_at_build": at_build, "clients_after": sorted(created)}))
"""


def test_the_function_imports_no_xray_sdk_and_builds_its_clients_on_first_use() -> None:
    import subprocess
    import sys

    env = {"RESULTS_TABLE": "t", "FAILURE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q",
           "AWS_DEFAULT_REGION": "us-east-1", **FAKE_CREDENTIALS}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["xray"] == []  # not imported, not even attempted
    assert seen["clients_at_build"] == []  # nothing at import or build: the first record builds what it uses
    assert seen["clients_after"] == ["rekognition"]
