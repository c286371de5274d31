"""Local mode's outcome events: what the stack's event source mapping and events function do
(detect_faces.outcome_events), run on the embedded results table's stream. Every stored outcome becomes one event
on the embedded EventBridge's bus (source `facepipe`), where any client's rule with an SQS target receives it
(docs/LOCAL_MODE.md, "Outcome events")."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from moto.events.models import EventPattern

from detect_faces.outcome_events import STREAM_FILTER, publish

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger("facepipe.outcome_events")
POLL_SECONDS = 0.1
PUBLISH_ATTEMPTS = 5


@dataclass
class OutcomeStreamStats:
    records: int = 0  # stream records read
    published: dict[str, int] = field(default_factory=dict)  # events put on the bus, by detail-type
    undelivered: int = 0  # records whose event the bus refused PUBLISH_ATTEMPTS times


class LocalOutcomeEvents:
    """A thread that reads the table's stream from its start, as the stack's mapping does (TRIM_HORIZON), keeps the
    records the mapping's filter keeps, and publishes each new outcome with the events function's own code."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        streams: Any,  # a DynamoDB Streams client: mypy-boto3-dynamodbstreams is not in requirements-dev.txt
        # Any: detect_faces.outcome_events.publish takes its own Publisher protocol, which the stubs' EventBridgeClient
        # (put_events over TypedDict entries) does not satisfy; the function's own client is untyped the same way
        events: Any,
        table: str,
        bus: str = "default",
    ) -> None:
        self.streams = streams
        self.events = events
        self.bus = bus
        self.stream_arn = str(dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"])
        self.stats = OutcomeStreamStats()
        self._filter = EventPattern.load(json.dumps(STREAM_FILTER))
        self._stop = threading.Event()
        self._quiet = threading.Condition()
        self._quiet_passes = 0  # passes that found the stream read to its end
        self._thread: threading.Thread | None = None

    def start(self) -> LocalOutcomeEvents:
        self._thread = threading.Thread(target=self._run, name="outcome-events", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once a pass that began after this call found the stream read to its end: every outcome stored before
        the call is published."""
        with self._quiet:
            target = self._quiet_passes + 2  # the pass under way may have begun before the call
            return self._quiet.wait_for(lambda: self._quiet_passes >= target, timeout)

    def _run(self) -> None:
        iterators: dict[str, str] = {}
        while not self._stop.is_set():
            try:
                if not self._read(iterators):
                    with self._quiet:
                        self._quiet_passes += 1
                        self._quiet.notify_all()
                    time.sleep(POLL_SECONDS)
            except Exception:  # the stream or the bus answered badly: log it and read again
                if self._stop.is_set():
                    return
                log.exception("reading the results table's stream failed; retrying")
                time.sleep(0.5)

    def _read(self, iterators: dict[str, str]) -> bool:
        """One pass over every shard; True when records were read."""
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        read = False
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in iterators:
                iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            answer = self.streams.get_records(ShardIterator=iterators[shard_id])
            iterators[shard_id] = answer.get("NextShardIterator") or iterators[shard_id]
            for record in answer.get("Records", []):
                read = True
                self._take({**record, "eventSourceARN": self.stream_arn})
        return read

    def _take(self, record: dict[str, Any]) -> None:
        self.stats.records += 1
        if not self._filter.matches_event(json.loads(json.dumps(record, default=str))):
            return
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                kind = publish(record, self.events, self.bus)
            except Exception:  # the bus refused it: retried, as the mapping retries the stream
                log.warning("outcome event not taken by the bus (attempt %d)", attempt, exc_info=True)
                time.sleep(0.05 * attempt)
                continue
            if kind is not None:
                self.stats.published[kind] = self.stats.published.get(kind, 0) + 1
            return
        self.stats.undelivered += 1
        log.error("outcome event undelivered after %d attempts: %s", PUBLISH_ATTEMPTS, record.get("eventID"))
