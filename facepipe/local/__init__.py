"""Local mode: the whole pipeline on a laptop (docs/LOCAL_MODE.md).

moto's server as the embedded AWS (aws.py, moto_patches.py), the DetectFaces emulator (emulator.py) on
CenterFace (centerface.py), a local Lambda runtime (runtime.py) for the very same handler, wired by
pipeline.py; the sample photos (photos/), the demo (demo.py) and the running stack's address (state.py).
"""

from __future__ import annotations

from .aws import LOCAL_FUNCTION
from .pipeline import LocalPipeline, LocalSettings, running

__all__ = ["LOCAL_FUNCTION", "LocalPipeline", "LocalSettings", "running"]
