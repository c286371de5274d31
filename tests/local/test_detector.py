"""CenterFace on cv2.dnn: one network per input shape (its ONNX graph has fixed shapes)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from facepipe.common import photos
from facepipe.local.centerface import CenterFaceDetector, Face

pytestmark = pytest.mark.e2e


def rgb(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    img = Image.open(io.BytesIO(photos.photo(name))).convert("RGB")
    return np.asarray(img.resize(size) if size else img)


def test_alternating_shapes_give_the_same_answers(detector: CenterFaceDetector) -> None:
    # Given images whose network inputs differ (640x640, 544x640, 640x384), detected in alternation
    square, tall, wide = rgb("astronaut.jpg"), rgb("grace_hopper.jpg"), rgb("astronaut.jpg", (1920, 1080))
    shapes = {detector.input_shape(i.shape[1], i.shape[0]) for i in (square, tall, wide)}
    assert len(shapes) == 3
    first = [detector.detect(i) for i in (square, tall, wide)]
    # When they are detected again in another order
    again = [detector.detect(i) for i in (wide, square, tall)]
    # Then every answer is the same as the first time: no network was reused for a shape it was not built for
    assert [len(f) for f in first] == [1, 1, 1]
    for before, after in zip(first, [again[1], again[2], again[0]], strict=True):
        assert np.allclose(before[0].box, after[0].box)
    # each shape has its own network, built for exactly that shape
    nets = dict(detector._nets)
    assert shapes <= set(nets)
    assert all(net.in_shape == shape for shape, (_, net) in nets.items())
    # and the stretched copy's face is where the square original's is, in relative terms
    (sq,), (wd,) = first[0], first[2]

    def centre(f: Face, w: int, h: int) -> tuple[float, float]:
        return (f.box[0] + f.box[2]) / 2 / w, (f.box[1] + f.box[3]) / 2 / h

    assert np.allclose(centre(sq, 512, 512), centre(wd, 1920, 1080), atol=0.02)


def test_boxes_are_in_the_original_images_pixels(detector: CenterFaceDetector) -> None:
    small = rgb("astronaut.jpg")
    large = rgb("astronaut.jpg", (1024, 1024))
    (a,), (b,) = detector.detect(small), detector.detect(large)
    assert np.allclose(np.array(b.box) / 2, a.box, atol=6)  # same face, twice the pixels
