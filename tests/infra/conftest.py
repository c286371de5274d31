"""One synth per session (each jsii start costs seconds)."""

from __future__ import annotations

import pytest

from tests.infra.synth import Synth, synth


@pytest.fixture(scope="session")
def default_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(tmp_path_factory.mktemp("cdk-default"))


@pytest.fixture(scope="session")
def tuned_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth(
        tmp_path_factory.mktemp("cdk-tuned"),
        faceAttributes="ALL",
        reservedConcurrency=20,
        retryAttempts=1,
        maxEventAgeSeconds=3600,
        logRetentionDays=90,
        removalPolicy="destroy",
        alarmEmail="ops@example.com",
    )
