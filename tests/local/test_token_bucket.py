"""The emulator's DetectFaces quota: a token bucket, on a fake clock."""

from __future__ import annotations

import pytest

from facepipe.local.emulator import TokenBucket

pytestmark = pytest.mark.unit


def test_token_bucket_allows_the_rate_and_no_more() -> None:
    now = [0.0]
    bucket = TokenBucket(5.0, clock=lambda: now[0])
    granted = 0
    for _ in range(100):  # 10 s of requests every 0.1 s
        granted += bucket.take()
        now[0] += 0.1
    assert 50 <= granted <= 55  # 5/s plus the initial burst of one second
