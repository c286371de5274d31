"""The real pipeline, locally, on real photos: the faces we know are there are found, and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from facepipe.common import photos
from tests.helpers import Local

pytestmark = pytest.mark.e2e

# Where each known face is (centre, as a fraction of width and height), judged by eye from the photos.
FACE_CENTRES = {"astronaut.jpg": (0.44, 0.22), "camera.jpg": (0.45, 0.30), "grace_hopper.jpg": (0.53, 0.38)}


def centre(face: dict[str, Any]) -> tuple[float, float]:
    box = face["BoundingBox"]
    return box["Left"] + box["Width"] / 2, box["Top"] + box["Height"] / 2


def contains(face: dict[str, Any], point: tuple[float, float]) -> bool:
    box = face["BoundingBox"]
    x, y = point
    return bool(box["Left"] <= x <= box["Left"] + box["Width"] and box["Top"] <= y <= box["Top"] + box["Height"])


def test_known_faces_are_found_and_nothing_else(local: Local) -> None:
    # Given the sample photos uploaded to the local bucket
    versions = {name: local.upload(f"in/{name}", photos.photo(name)) for name in [*photos.FACES, *photos.NO_FACES]}

    # When the pipeline has processed every event
    local.settle()

    # Then each face photo has exactly its face, boxed around the face, with landmarks inside the box
    for name, point in FACE_CENTRES.items():
        result = local.result(f"in/{name}")
        assert (result.status, result.face_count, result.version_id) == ("DETECTED", 1, versions[name])
        (face,) = result.faces
        assert contains(face, point), f"{name}: box {face['BoundingBox']} misses the face at {point}"
        assert [m["Type"] for m in face["Landmarks"]] == ["eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"]
        assert all(contains(face, (m["X"], m["Y"])) for m in face["Landmarks"])
        assert face["Confidence"] > 50
        assert set(face) == {"BoundingBox", "Landmarks", "Pose", "Quality", "Confidence"}  # nothing invented
        assert 0 <= face["Quality"]["Brightness"] <= 100 and 0 <= face["Quality"]["Sharpness"] <= 100
        assert abs(face["Pose"]["Roll"]) < 20  # upright portraits
    # And the photos without people have none
    for name in photos.NO_FACES:
        result = local.result(f"in/{name}")
        assert (result.status, result.face_count) == ("DETECTED", 0)
    assert local.dlq() == []


def test_a_composite_of_several_people_gives_the_right_count(local: Local) -> None:
    body = photos.composite(["astronaut.jpg", "camera.jpg", "grace_hopper.jpg", "rocket.jpg", "chelsea.jpg"], columns=3)
    local.upload("group.png", body)
    local.settle()
    result = local.result("group.png")
    assert result.face_count == 3
    # one face per portrait tile (tiles are 1/3 wide, 1/2 high): tiles 0, 1 and 2
    tiles = sorted((int(centre(f)[0] * 3), int(centre(f)[1] * 2)) for f in result.faces)
    assert tiles == [(0, 0), (1, 0), (2, 0)]


def test_exif_orientation_is_applied_before_boxes_are_computed(local: Local) -> None:
    # Given Grace Hopper's photo stored sideways, with an EXIF tag that turns it upright
    local.upload("sideways.jpg", photos.rotated_with_exif("grace_hopper.jpg"))
    local.settle()
    # Then the box is where her face is in the upright photo
    (face,) = local.result("sideways.jpg").faces
    assert contains(face, FACE_CENTRES["grace_hopper.jpg"])
    assert abs(face["Pose"]["Roll"]) < 20


def test_a_new_version_of_a_key_is_analysed_again_and_removal_deletes_results(local: Local) -> None:
    local.upload("swap.jpg", photos.photo("coffee.jpg"))
    local.settle()
    assert local.result("swap.jpg").face_count == 0
    v2 = local.upload("swap.jpg", photos.photo("astronaut.jpg"))
    local.settle()
    result = local.result("swap.jpg")
    assert (result.version_id, result.face_count) == (v2, 1)

    local.delete("swap.jpg")
    local.settle()
    gone = local.result("swap.jpg")
    assert (gone.status, gone.faces) == ("DELETED", [])


def test_a_duplicate_notification_costs_no_second_detection(local: Local) -> None:
    local.upload("dup.jpg", photos.photo("camera.jpg"))
    local.settle()
    calls = local.detect_calls
    # S3 delivers at least once: replay the same notification
    assert local.p.runtime is not None
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "awsRegion": local.p.settings.region,
                "s3": {
                    "bucket": {"name": local.p.bucket},
                    "object": {
                        "key": "dup.jpg",
                        "versionId": local.result("dup.jpg").version_id,
                        "sequencer": local.result("dup.jpg").sequencer,
                    },
                },
            }
        ]
    }
    local.p.runtime.invoke_async(event)
    local.events += 1
    local.settle()
    assert local.detect_calls == calls
    assert local.result("dup.jpg").face_count == 1
