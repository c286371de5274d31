"""Detector latency: CenterFace on cv2.dnn at 512 px and 1920x1080 (long side scaled to 640).

.venv/bin/python bench/detector.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import io
import time

import cv2
import numpy as np
from common import median, percentile
from PIL import Image

from facepipe.common import photos
from facepipe.local.centerface import CenterFaceDetector


def rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    detector = CenterFaceDetector()
    astronaut = rgb(photos.photo("astronaut.jpg"))
    scene = rgb(photos.composite(["astronaut.jpg", "camera.jpg", "grace_hopper.jpg", "coffee.jpg"], columns=4))
    images = {
        "512x512 (astronaut)": astronaut,
        "1920x1080 (4-photo scene)": cv2.resize(scene, (1920, 1080), interpolation=cv2.INTER_LINEAR),
    }
    print(f"cv2 {cv2.__version__}, threads {cv2.getNumThreads()}")
    print(f"{'image':<28} {'net input':>10} {'faces':>6} {'median ms':>10} {'p95 ms':>8}")
    for name, image in images.items():
        detector.detect(image)  # builds this shape's network
        times = []
        faces = 0
        for _ in range(args.repeat):
            start = time.perf_counter()
            faces = len(detector.detect(image))
            times.append(time.perf_counter() - start)
        w, h = detector.input_shape(image.shape[1], image.shape[0])
        print(
            f"{name:<28} {f'{w}x{h}':>10} {faces:>6} {median(times) * 1000:>10.1f} {percentile(times, 95) * 1000:>8.1f}"
        )
    print("(target: <= 60 ms median per 1080p image)")


if __name__ == "__main__":
    main()
