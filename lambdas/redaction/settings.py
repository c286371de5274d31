"""The redaction function's settings, read from its environment once per cold start, and the memory rule that
bounds the images it decodes (docs/REDACTION.md, "The memory rule")."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass

from detect_faces.contract import EnvVar
from detect_faces.settings import ConfigurationError as ConfigurationError  # re-exported: the handler names it
from detect_faces.settings import required

from .redact import DEFAULT_MARGIN, MAX_MARGIN, Mode


class RedactionEnv(enum.StrEnum):
    """The variables the stack sets on the redaction function (besides the two it shares with detect_faces)."""

    BUCKET = "REDACTION_BUCKET"  # where the copies go, under "<source bucket>/<source key>"
    MODE = "REDACTION_MODE"  # blur | pixelate | fill
    MARGIN = "REDACTION_MARGIN"  # a fraction of a face box's width (height) added on its left and right (top, bottom)
    # Set by Lambda itself: the function's memory size in MB, from which the largest decodable image follows.
    MEMORY_SIZE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"


# ---- the memory rule -------------------------------------------------------------------------------------------
# What the function holds before it reads an image: the runtime, boto3, Powertools and Pillow (bench/redaction.py
# measures 82 MB of resident set after the function's imports), with headroom.
BASELINE_MB = 128
# Peak bytes of memory per pixel of the decoded image, over the baseline: the source's bytes, the decoded pixels (3
# bytes for RGB, 4 for RGBA and CMYK), their turned copy when the EXIF orientation turns the image, the encoded copy
# and Pillow's buffers. bench/redaction.py measures 4.5 for a JPEG, 5.8-6.8 for a PNG and 8.3 for a JPEG stored
# turned (24 MP); 10 leaves a margin for CMYK and RGBA.
BYTES_PER_PIXEL = 10
DEFAULT_MEMORY_MB = 1024  # outside Lambda (tests, tools), where AWS_LAMBDA_FUNCTION_MEMORY_SIZE is not set
MIN_MAX_PIXELS = 1_000_000  # even a function too small for the rule decodes a megapixel


def max_pixels_for(memory_mb: int) -> int:
    """The largest image (width x height) the function decodes at this memory size:
    (memory - BASELINE_MB) MiB / BYTES_PER_PIXEL, and never under MIN_MAX_PIXELS. 1024 MB: 94 MP; 2048 MB: 201 MP."""
    return max(MIN_MAX_PIXELS, (memory_mb - BASELINE_MB) * 1024 * 1024 // BYTES_PER_PIXEL)


def _mode(env: Mapping[str, str]) -> Mode:
    raw = env.get(RedactionEnv.MODE, "").strip().lower() or Mode.BLUR.value
    try:
        return Mode(raw)
    except ValueError:
        choices = ", ".join(m.value for m in Mode)
        raise ConfigurationError(
            f"environment variable {RedactionEnv.MODE} must be one of {choices}, got {raw!r}"
        ) from None


def _margin(env: Mapping[str, str]) -> float:
    raw = env.get(RedactionEnv.MARGIN, "").strip()
    if not raw:
        return DEFAULT_MARGIN
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= MAX_MARGIN:  # also refuses nan
        raise ConfigurationError(
            f"environment variable {RedactionEnv.MARGIN} must be a fraction from 0 to {MAX_MARGIN} (0.15 = 15 %), "
            f"got {raw!r}"
        )
    return value


def _memory_mb(env: Mapping[str, str]) -> int:
    raw = env.get(RedactionEnv.MEMORY_SIZE, "").strip()
    if not raw:
        return DEFAULT_MEMORY_MB
    if not (raw.isascii() and raw.isdigit()) or int(raw) <= 0:
        raise ConfigurationError(f"environment variable {RedactionEnv.MEMORY_SIZE} must be a number of MB, got {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class RedactionSettings:
    bucket: str
    results_table: str
    failure_queue_url: str
    mode: Mode = Mode.BLUR
    margin: float = DEFAULT_MARGIN
    max_pixels: int = max_pixels_for(DEFAULT_MEMORY_MB)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RedactionSettings:
        env = os.environ if env is None else env
        queue_url = required(env, EnvVar.FAILURE_QUEUE_URL)
        if not queue_url.startswith(("https://", "http://")):
            raise ConfigurationError(
                f"environment variable {EnvVar.FAILURE_QUEUE_URL} must be a queue URL, got {queue_url!r}"
            )
        return cls(
            bucket=required(env, RedactionEnv.BUCKET),
            results_table=required(env, EnvVar.RESULTS_TABLE),
            failure_queue_url=queue_url,
            mode=_mode(env),
            margin=_margin(env),
            max_pixels=max_pixels_for(_memory_mb(env)),
        )

    def to_env(self) -> dict[str, str]:
        """The environment from_env reads back as these settings (the pixel limit follows from the memory size,
        which Lambda sets): what the stack and local mode set."""
        return {
            RedactionEnv.BUCKET: self.bucket,
            EnvVar.RESULTS_TABLE: self.results_table,
            EnvVar.FAILURE_QUEUE_URL: self.failure_queue_url,
            RedactionEnv.MODE: self.mode.value,
            RedactionEnv.MARGIN: repr(self.margin),
        }
