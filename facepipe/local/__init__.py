"""Local mode: the whole pipeline on a laptop (docs/LOCAL_MODE.md).

moto's server as the embedded AWS (aws.py, moto_patches.py), the DetectFaces emulator (emulator.py) on
CenterFace (centerface.py), a local Lambda runtime (runtime.py) for the very same handler, wired by
pipeline.py; the demo (demo.py), the running stack's address and the Target the operator commands act on
(state.py), and an S3 Batch Operations job emulated for `backfill --engine batch-operations --local`
(batch_operations.py). It may use the operator commands (facepipe.ops); they never use it.
"""

from __future__ import annotations

from .aws import LOCAL_FUNCTION
from .pipeline import LocalPipeline, LocalSettings, running
from .state import local_target

__all__ = ["LOCAL_FUNCTION", "LocalPipeline", "LocalSettings", "local_target", "running"]
