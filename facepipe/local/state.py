"""The running local stack's address, written by `local up` and read by the operator commands (`--local`): the
Target they act on (`local_target`)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from facepipe.common.clients import ClientFor
from facepipe.ops.errors import OpsError
from facepipe.ops.targets import Target, TargetKind

from .aws import local_clients


@dataclass(frozen=True)
class LocalState:
    endpoint: str
    rekognition_endpoint: str
    lambda_endpoint: str
    region: str
    bucket: str
    table: str
    dlq_url: str
    function_name: str
    locations: tuple[str, ...] = ()  # every watched s3://bucket/prefix (empty in states written before them)
    reports_bucket: str = ""  # Batch Operations reports of `backfill --engine batch-operations --local`
    redacted_bucket: str = ""  # the redacted copies, with `local up --redaction`; "" when redaction is off
    redaction_function_name: str = ""  # the redaction function, behind the same Invoke API (redrive replays to it)

    @property
    def client(self) -> ClientFor:
        """Clients for this stack's endpoints: `state.client("s3")`."""
        endpoints = {"rekognition": self.rekognition_endpoint, "lambda": self.lambda_endpoint}
        return local_clients(self.region, endpoints, self.endpoint)

    def target(self) -> Target:
        """Where the operator commands act on this stack: through its endpoints, as on a deployed one."""
        return Target(
            bucket=self.bucket,
            table=self.table,
            dlq_url=self.dlq_url,
            function_name=self.function_name,
            client_for=self.client,
            description=f"local stack at {self.endpoint}",
            kind=TargetKind.LOCAL,
            locations=self.locations,
            reports_bucket=self.reports_bucket,
            redaction_bucket=self.redacted_bucket,
            redaction_function_name=self.redaction_function_name,
        )


def path() -> Path:
    base = os.environ.get("FACEPIPE_STATE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "facepipe")
    return Path(base) / "local.json"


def write(state: LocalState) -> Path:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(asdict(state), indent=2))
    return target


def read() -> LocalState | None:
    target = path()
    if not target.exists():
        return None
    data = json.loads(target.read_text())
    data["locations"] = tuple(data.get("locations") or ())
    return LocalState(**data)


def clear() -> None:
    path().unlink(missing_ok=True)


def local_target() -> Target:
    """The running local stack (`python -m facepipe local up`), from the state it wrote."""
    current = read()
    if current is None:
        raise OpsError("no local stack is running: start one with `python -m facepipe local up`")
    return current.target()
