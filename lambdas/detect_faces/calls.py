"""What each AWS call of a record cost: latency and attempts, from botocore's own events.

With no X-Ray SDK in the function (Lambda's active tracing records the invocation), this is what tells an
operator where a record's time went: every structured log line of a record carries `aws_calls`, e.g.
`{"DetectFaces": {"calls": 1, "attempts": 1, "ms": 412.3}, "UpdateItem": {"calls": 2, ...}}`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from botocore.awsrequest import AWSResponse
    from botocore.model import OperationModel

_local = threading.local()
CallHook = Callable[[str, float, bool], None]  # operation, milliseconds, failed
ClientT = TypeVar("ClientT")
FIRST_FAILED_STATUS = 300  # an HTTP answer below it is a success


def begin_record() -> dict[str, dict[str, float]]:
    """Start counting this thread's calls afresh; the returned dict fills in as the record runs."""
    stats: dict[str, dict[str, float]] = {}
    _local.stats = stats
    return stats


def instrument(client: ClientT, on_call: CallHook | None = None) -> ClientT:
    """Time every call of this client (retries inside botocore included) into the current record's stats.
    An in-memory fake (no botocore event system) is returned as it is."""
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is None:
        return client

    # botocore's event handlers: what each event passes is botocore's (the request context holds any value).
    def started(model: OperationModel, context: dict[str, Any], **_: object) -> None:
        context["facepipe_started"] = time.perf_counter()
        context["facepipe_sends"] = 0
        _local.context = context

    def before_send(**_: object) -> None:
        context = getattr(_local, "context", None)
        if context is not None:
            context["facepipe_sends"] = context.get("facepipe_sends", 0) + 1

    def after_call(
        model: OperationModel, context: dict[str, Any], http_response: AWSResponse | None = None, **_: object
    ) -> None:
        failed = http_response is None or getattr(http_response, "status_code", 200) >= FIRST_FAILED_STATUS
        _record(model.name, context, failed, on_call)

    def after_call_error(
        model: OperationModel | None = None, context: dict[str, Any] | None = None, **_: object
    ) -> None:
        if model is not None and context is not None:
            _record(model.name, context, True, on_call)

    # before-parameter-build reaches every handler (before-call stops at the first answer, e.g. a Stubber's)
    events.register("before-parameter-build", started)
    events.register("before-send", before_send)
    events.register("after-call", after_call)
    events.register("after-call-error", after_call_error)
    return client


def _record(operation: str, context: dict[str, Any], failed: bool, on_call: CallHook | None) -> None:
    started = context.pop("facepipe_started", None)
    if started is None:
        return
    ms = (time.perf_counter() - started) * 1000.0
    sends = context.pop("facepipe_sends", 0)
    stats = getattr(_local, "stats", None)
    if stats is not None:
        entry = stats.setdefault(operation, {"calls": 0, "attempts": 0, "ms": 0.0})
        entry["calls"] += 1
        entry["attempts"] += max(1, sends)  # a stubbed call sends nothing: it still was one attempt
        entry["ms"] = round(entry["ms"] + ms, 1)
        if failed:
            entry["errors"] = entry.get("errors", 0) + 1
    if on_call is not None:
        on_call(operation, ms, failed)
