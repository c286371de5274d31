"""A local Lambda runtime with Lambda's asynchronous-invocation semantics, for the very same handler.

S3 notifications arrive on an (embedded) SQS queue. Each one is accepted as an async invocation, then:
- at most `concurrency` invocations run at once (reserved concurrency); the rest wait, like Lambda's
  internal queue;
- an invocation that raises is retried `retry_attempts` times after Lambda's delays (about 1 and 2
  minutes), scaled by `delay_scale`;
- an event that exhausts its retries, or grows older than `max_event_age`, goes to the on-failure
  destination (the DLQ) as Lambda's destination record: requestPayload is the event, responsePayload
  the last error.

The queue can hold anything someone sent to it. Each message is taken on its own: any JSON document is
invoked, as Lambda would invoke it (the function decides; a failure ends in the DLQ as above); a message that
is not JSON, which Lambda's Invoke API would refuse, is set aside in the DLQ as a failure record (errorType
InvalidEventError, requestPayload the text itself) with a warning, and the intake goes on.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from detect_faces.dead_letters import failure_record

from .loopback import LoopbackServer

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger("facepipe.runtime")

# The function, as Lambda calls it: (event, context) -> its result; and what the runtime tells of each invocation.
Handler = Callable[[dict[str, Any], Any], Any]
OnResult = Callable[[dict[str, Any], Any, BaseException | None], None]

LAMBDA_RETRY_DELAYS = (60.0, 120.0)
# How much of an unreadable notification is logged, and kept as the requestPayload of its failure record.
LOG_EXCERPT = 120
PAYLOAD_EXCERPT = 16 * 1024  # escaped as JSON, even 16 Ki astral characters stay under SQS's 256 KiB message limit


@dataclass
class LocalContext:
    aws_request_id: str
    invoked_function_arn: str
    deadline: float
    function_name: str = "detect_faces"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    log_group_name: str = "/aws/lambda/detect_faces"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass
class RuntimeStats:
    accepted: int = 0
    invocations: int = 0
    errors: int = 0
    retries: int = 0
    dead_lettered: int = 0
    peak_concurrency: int = 0
    busy_seconds: float = 0.0  # summed invocation durations
    error_types: dict[str, int] = field(default_factory=dict)
    set_aside: int = 0  # notifications that were not JSON: sent to the DLQ, never invoked


@dataclass(frozen=True)
class RuntimeSettings:
    """The function's asynchronous invocation as the stack configures it, scaled for a laptop."""

    concurrency: int = 4  # reserved concurrency
    retry_attempts: int = 2  # Lambda's async retries
    delay_scale: float = 0.01  # Lambda's ~1 min / ~2 min retry delays, scaled
    max_event_age: float = 6 * 3600  # seconds
    timeout: float = 60.0  # the function's timeout, as its context tells it


@dataclass
class _Invocation:
    event: dict[str, Any]
    request_id: str
    accepted_at: float
    attempt: int = 1


class LocalLambdaRuntime:
    def __init__(
        self,
        handler: Handler,
        sqs: SQSClient,
        dlq_url: str,
        *,
        function_arn: str,
        settings: RuntimeSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_result: OnResult | None = None,
    ) -> None:
        self.handler = handler
        self.sqs = sqs
        self.dlq_url = dlq_url
        self.function_arn = function_arn
        self.settings = settings = settings or RuntimeSettings()
        self.clock = clock
        self.on_result = on_result
        self.stats = RuntimeStats()
        self._pool = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="lambda")
        self._lock = threading.Lock()
        self._pending = 0
        self._running = 0
        self._idle = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._receiving = threading.Lock()
        self._poller: threading.Thread | None = None
        self._api: LoopbackServer | None = None
        self._api_functions: dict[str, LocalLambdaRuntime] = {}

    # ---- accepting events --------------------------------------------------------------------------
    def invoke_async(self, event: dict[str, Any]) -> str:
        """Lambda's InvocationType=Event: accepted at once, run later. Returns the request id."""
        invocation = _Invocation(event=event, request_id=str(uuid.uuid4()), accepted_at=self.clock())
        with self._lock:
            self._pending += 1
            self.stats.accepted += 1
        self._pool.submit(self._run, invocation)
        return invocation.request_id

    def poll(self, queue_url: str) -> None:
        """Feed the runtime from an SQS queue of S3 notifications, until stop()."""

        def loop() -> None:
            while not self._stop.is_set():
                if self._paused.is_set():
                    time.sleep(0.05)
                    continue
                with self._receiving:  # pause() waits for a receive in flight and what it took
                    if not self._receive_and_take(queue_url):
                        return

        self._poller = threading.Thread(target=loop, name="s3-notifications", daemon=True)
        self._poller.start()

    def _receive_and_take(self, queue_url: str) -> bool:
        """One receive from the notification queue and every message it got; False when the runtime stops."""
        if self._paused.is_set():
            return True
        try:
            messages = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
        except Exception:
            if self._stop.is_set():
                return False
            log.exception("polling the notification queue failed")
            time.sleep(0.5)
            return True
        for message in messages:
            try:
                self._take(queue_url, message)
            except Exception:  # one message must not end the intake of every later one
                if self._stop.is_set():
                    return False
                log.exception(
                    "notification %s not taken; it stays on the queue", message.get("MessageId"),
                    extra={"message_id": message.get("MessageId")},
                )  # fmt: skip
        return True

    def _take(self, queue_url: str, message: MessageTypeDef) -> None:
        """One notification: invoked if it is JSON, set aside if not; taken off the queue once either is done."""
        body = message["Body"]
        try:
            event = json.loads(body)
        except (ValueError, RecursionError) as exc:  # not JSON, or nested past what Python's parser reads
            if not self._set_aside(message, exc):
                return  # kept on the queue: it is tried again when its visibility timeout ends
        else:
            self.invoke_async(event)
        self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _set_aside(self, message: MessageTypeDef, error: Exception) -> bool:
        """A notification that is not JSON: Lambda's Invoke API refuses such a payload (InvalidRequestContent),
        so it is never an invocation. It goes to the DLQ as a failure record of the usual shape (errorType
        InvalidEventError, requestPayload the text itself, cut at PAYLOAD_EXCERPT), where `failures` lists it
        and `redrive` leaves it. False if the DLQ did not take it: then it stays on the notification queue."""
        message_id, body = str(message.get("MessageId", "")), str(message["Body"])
        excerpt = body[:LOG_EXCERPT]
        reason = "nested too deeply to parse" if isinstance(error, RecursionError) else str(error)
        record = failure_record(
            body[:PAYLOAD_EXCERPT],  # type: ignore[arg-type]  # the text itself: there is no event
            error_type="InvalidEventError",
            error_message=f"notification {message_id} is not JSON ({reason}); {len(body)} characters",
            request_id=str(uuid.uuid4()),
            function_arn=self.function_arn,
            invoke_count=0,
        )
        try:
            self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=json.dumps(record))
        except Exception:  # kept on the queue instead; the intake goes on
            log.exception(
                "notification %s is not JSON and could not be set aside in the DLQ; it stays on the queue: %r",
                message_id, excerpt, extra={"message_id": message_id, "excerpt": excerpt},
            )  # fmt: skip
            return False
        log.warning(
            "notification %s is not JSON (%s); set aside in the DLQ as InvalidEventError: %r",
            message_id, reason, excerpt, extra={"message_id": message_id, "excerpt": excerpt},
        )  # fmt: skip
        with self._lock:
            self.stats.set_aside += 1
        return True

    def pause(self) -> None:
        """Stop taking notifications off the queue (they wait there), e.g. to stage uploads and deletions. Returns
        once a receive in flight has ended and what it took is handed to the runtime."""
        self._paused.set()
        with self._receiving:
            pass

    def resume(self) -> None:
        self._paused.clear()

    # ---- running -------------------------------------------------------------------------------
    def _run(self, inv: _Invocation) -> None:
        if self.clock() - inv.accepted_at > self.settings.max_event_age:
            self._dead_letter(inv, "EventAgeExceeded", None)
            return
        with self._lock:
            self._running += 1
            self.stats.invocations += 1
            self.stats.peak_concurrency = max(self.stats.peak_concurrency, self._running)
        error: BaseException | None = None
        result: Any = None
        started = time.monotonic()
        try:
            result = self.handler(inv.event, self._context(inv.request_id))
        except Exception as exc:  # noqa: BLE001 - the function failed: Lambda's retry policy decides
            error = exc
        finally:
            with self._lock:
                self._running -= 1
                self.stats.busy_seconds += time.monotonic() - started
        if self.on_result is not None:
            self.on_result(inv.event, result, error)
        if error is None:
            self._done()
            return
        name = type(error).__name__
        with self._lock:
            self.stats.errors += 1
            self.stats.error_types[name] = self.stats.error_types.get(name, 0) + 1
        if inv.attempt > self.settings.retry_attempts:
            self._dead_letter(inv, "RetriesExhausted", error)
            return
        delay = LAMBDA_RETRY_DELAYS[min(inv.attempt - 1, len(LAMBDA_RETRY_DELAYS) - 1)] * self.settings.delay_scale
        log.info("invocation %s failed (%s); retry %d in %.2fs", inv.request_id, name, inv.attempt, delay)
        with self._lock:
            self.stats.retries += 1
        inv.attempt += 1
        timer = threading.Timer(delay, self._resubmit, args=(inv,))
        timer.daemon = True
        timer.start()

    def _resubmit(self, inv: _Invocation) -> None:
        try:
            self._pool.submit(self._run, inv)
        except RuntimeError:  # the runtime was stopped while the retry waited
            self._done()

    def _dead_letter(self, inv: _Invocation, condition: str, error: BaseException | None) -> None:
        record = failure_record(
            inv.event,
            error_type=type(error).__name__ if error else condition,
            error_message=str(error) if error else "event older than the maximum event age",
            request_id=inv.request_id,
            function_arn=self.function_arn,
            condition=condition,
            invoke_count=inv.attempt if error is not None else inv.attempt - 1,
            stack_trace=traceback.format_exception(error)[-3:] if error else [],
        )
        try:
            self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=json.dumps(record, default=str))
        except Exception:
            log.exception("could not write the on-failure record")
        with self._lock:
            self.stats.dead_lettered += 1
        self._done()

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once every accepted event reached its end (success or on-failure record)."""
        end = time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    # ---- Lambda's Invoke API, so boto3's lambda client (redrive, backfill) works against the local runtime ----
    def serve_invoke_api(self, function_name: str, host: str = "127.0.0.1", port: int = 0) -> str:
        """POST /2015-03-31/functions/{name}/invocations, InvocationType Event (202) or RequestResponse."""
        self._api_functions = {function_name: self}
        handler = type("InvokeApi", (_InvokeApi,), {"functions": self._api_functions})
        self._api = LoopbackServer(handler, "lambda-invoke-api", host, port)
        return self._api.url

    def serve_also(self, function_name: str, runtime: LocalLambdaRuntime) -> None:
        """Another function (its own runtime) behind this runtime's Invoke API: one Lambda endpoint for the local
        stack's functions, as one account's Lambda serves them all (redrive replays to either by name)."""
        self._api_functions[function_name] = runtime

    def _context(self, request_id: str) -> LocalContext:
        return LocalContext(
            aws_request_id=request_id,
            invoked_function_arn=self.function_arn,
            deadline=time.monotonic() + self.settings.timeout,
        )

    def invoke_sync(self, event: dict[str, Any]) -> tuple[Any, BaseException | None]:
        """InvocationType=RequestResponse: run now (no retries), return (result, error)."""
        try:
            return self.handler(event, self._context(str(uuid.uuid4()))), None
        except Exception as exc:  # noqa: BLE001 - reported to the caller as X-Amz-Function-Error
            return None, exc

    def stop(self) -> None:
        self._stop.set()
        if self._api is not None:
            self._api.stop()
            self._api = None
        if self._poller is not None:
            self._poller.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)


class _InvokeApi(BaseHTTPRequestHandler):
    """Lambda's Invoke API for the functions of the local stack, each run by its own runtime (serve_invoke_api and
    serve_also set them)."""

    protocol_version = "HTTP/1.1"
    functions: dict[str, LocalLambdaRuntime]
    runtime: LocalLambdaRuntime  # the function this request names, once _refusal found it

    def do_POST(self) -> None:
        payload = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        refused = self._refusal(urllib.parse.unquote(urllib.parse.urlsplit(self.path).path))
        if refused is not None:
            self._error(*refused)
            return
        try:
            event = json.loads(payload or b"{}")
        except json.JSONDecodeError:
            self._error(400, "InvalidRequestContentException", "Could not parse request body into json")
            return
        self._invoke(event, self.headers.get("X-Amz-Invocation-Type", "RequestResponse"))

    def _refusal(self, path: str) -> tuple[int, str, str] | None:
        """Why Lambda would refuse a request on this path (status, error type, message), or None."""
        match = re.fullmatch(r"/2015-03-31/functions/([^/]+)/invocations", path)
        if not match:
            return 404, "UnknownOperationException", f"{path} is not emulated"
        named = match.group(1)
        runtime = self.functions.get(named.rsplit(":", 1)[-1] if named.startswith("arn:") else named)
        if runtime is None:
            return 404, "ResourceNotFoundException", f"Function not found: {named}"
        self.runtime = runtime
        return None

    def _invoke(self, event: Any, kind: str) -> None:
        if kind == "DryRun":
            self._reply(204)
        elif kind == "Event":
            self.runtime.invoke_async(event)
            self._reply(202)
        else:
            result, error = self.runtime.invoke_sync(event)
            if error is None:
                self._reply(200, json.dumps(result, default=str).encode(), {"X-Amz-Executed-Version": "$LATEST"})
            else:
                body = json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}).encode()
                self._reply(200, body, {"X-Amz-Function-Error": "Unhandled"})

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"Type": "User", "message": message}).encode()
        self._reply(status, body, {"x-amzn-ErrorType": code})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)
