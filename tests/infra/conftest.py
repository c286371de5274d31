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
        backlogConcurrency=3,
    )


KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture(scope="session")
def existing_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Attached to an existing bucket under a prefix, S3 notifications: context as the CDK CLI passes it (strings)."""
    return synth(tmp_path_factory.mktemp("cdk-existing"), existingBuckets='["my-photos"]', keyPrefixes='["uploads/"]')


@pytest.fixture(scope="session")
def eventbridge_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Two existing buckets, two prefixes, EventBridge delivery, an SSE-KMS key: lists as cdk.json holds them."""
    return synth(
        tmp_path_factory.mktemp("cdk-eventbridge"),
        existingBuckets=["my-photos", "archive.example"],
        keyPrefixes=["uploads/", "incoming/"],
        notifications="eventbridge",
        kmsKeyArns=[KEY_ARN],
    )


@pytest.fixture(scope="session")
def special_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Prefixes with characters S3 wants URL-encoded in a notification filter (non-ASCII, a space), S3 delivery."""
    return synth(
        tmp_path_factory.mktemp("cdk-special"),
        existingBuckets='["my-photos"]',
        keyPrefixes='["fotos/größe/", "Camera Uploads/"]',
    )


@pytest.fixture(scope="session")
def special_eventbridge_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The same with EventBridge delivery, and a prefix S3 delivery refuses (parentheses): its rule matches raw keys."""
    return synth(
        tmp_path_factory.mktemp("cdk-special-eventbridge"),
        existingBuckets='["my-photos"]',
        keyPrefixes='["fotos/größe/", "Camera Uploads (2019)/"]',
        notifications="eventbridge",
    )
