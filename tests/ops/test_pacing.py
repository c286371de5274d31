"""Pacing of the commands that invoke the function: pure logic on a fake clock."""

from __future__ import annotations

import pytest

from tests.helpers import FakeClock, limiter

pytestmark = pytest.mark.unit


def test_rate_limiter_spaces_calls_evenly() -> None:
    clock = FakeClock()
    rl = limiter(5, clock)
    start = clock.now
    for _ in range(11):
        rl.wait()
    assert clock.now - start == pytest.approx(2.0)  # 11 calls at 5/s: the last one 2 s after the first


def test_rate_limiter_does_not_wait_when_calls_are_already_spaced() -> None:
    clock = FakeClock()
    rl = limiter(2, clock)
    rl.wait()
    clock.now += 1.0  # the caller took longer than the spacing
    rl.wait()
    assert clock.slept == []
