"""A DetectFaces emulator speaking Rekognition's JSON 1.1 protocol, backed by a real face detector.

Like the service it reads the S3Object itself (honouring Version), applies Rekognition's limits and
answers with Rekognition's own errors:

  object missing / unreadable -> InvalidS3ObjectException      over 15 MB        -> ImageTooLargeException
  not JPEG or PNG / corrupt   -> InvalidImageFormatException   under 80x80 px    -> InvalidParameterException
  above the configured TPS    -> ThrottlingException

It honours JPEG EXIF orientation (boxes are relative to the upright image), and fills only what a real
detector can fill honestly: BoundingBox, Confidence, the five DEFAULT landmarks, Pose (rough) and Quality.
It never invents the ALL-only attributes (AgeRange, Emotions, Gender, ...): with Attributes=["ALL"] it
answers with the DEFAULT set and says so in its log and an `x-facepipe-emulator-note` response header.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from botocore.exceptions import ClientError
from PIL import Image, ImageOps, UnidentifiedImageError

from .centerface import LANDMARK_TYPES, CenterFaceDetector, Face, FixedDetector
from .loopback import LoopbackServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectRequestTypeDef

log = logging.getLogger("facepipe.emulator")

TARGET = "RekognitionService.DetectFaces"
MAX_S3_BYTES = 15 * 1024 * 1024
MAX_INLINE_BYTES = 5 * 1024 * 1024
MIN_PIXELS = 80
MAX_FACES = 100
# Pose: below this, the rotation is at gimbal lock and its pitch undefined (0); a pitch past a quarter turn is the
# same orientation, seen from the other side of solvePnP's solution.
GIMBAL_LOCK = 1e-6
QUARTER_TURN = 90.0
ALL_ONLY_NOTE = "Attributes=ALL: the emulator returns the DEFAULT attributes only; ALL-only attributes are not emulated"

# A generic 3-D face (mm), in LANDMARK_TYPES order, for a rough head pose from five points.
_MODEL_POINTS = np.array(
    [(-32.0, 35.0, -25.0), (32.0, 35.0, -25.0), (0.0, 0.0, 0.0), (-26.0, -32.0, -20.0), (26.0, -32.0, -20.0)],
    dtype=np.float64,
)


class RekognitionError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class TokenBucket:
    """Throttles above `rate` requests per second (burst of one second's worth), like a TPS quota."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False


@dataclass
class EmulatorStats:
    requests: int = 0
    throttled: int = 0
    errors: int = 0
    faces: int = 0
    # successful analyses per (bucket, key, version or None): more than one means work was done twice
    analysed: Counter[tuple[str, str, str | None]] = field(default_factory=Counter)
    throttled_keys: Counter[str] = field(default_factory=Counter)  # throttled calls by object key


class DetectFacesEmulator:
    def __init__(
        self,
        s3: S3Client,
        detector: CenterFaceDetector | FixedDetector | None = None,
        tps: float | None = None,
        fault: Callable[[dict[str, Any]], RekognitionError | None] | None = None,
        latency: float = 0.0,
    ) -> None:
        self.s3 = s3
        self.detector = detector or CenterFaceDetector()
        self.bucket = TokenBucket(tps) if tps else None
        self.fault = fault
        self.latency = latency  # added to every analysed request, to model the service's own latency
        self.stats = EmulatorStats()
        self._stats_lock = threading.Lock()
        self._server: LoopbackServer | None = None

    # ---- the operation ---------------------------------------------------------------------------
    def detect_faces(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._stats_lock:
            self.stats.requests += 1
        if self.bucket is not None and not self.bucket.take():
            name = str(((request.get("Image") or {}).get("S3Object") or {}).get("Name", ""))
            with self._stats_lock:
                self.stats.throttled += 1
                self.stats.throttled_keys[name] += 1
            raise RekognitionError("ThrottlingException", "Rate exceeded")
        if self.fault is not None and (injected := self.fault(request)) is not None:
            raise injected
        attributes = request.get("Attributes") or ["DEFAULT"]
        if not isinstance(attributes, list) or any(a not in ("DEFAULT", "ALL") for a in attributes):
            raise RekognitionError("InvalidParameterException", "Request has invalid parameters")
        image = request.get("Image")
        if not isinstance(image, dict) or ("S3Object" in image) == ("Bytes" in image):
            raise RekognitionError("InvalidParameterException", "Request has invalid parameters")
        data = self._read_s3(image["S3Object"]) if "S3Object" in image else self._read_bytes(image["Bytes"])
        rgb = decode(data)
        faces = self.detector.detect(rgb)[:MAX_FACES]
        height, width = rgb.shape[:2]
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if faces else None  # for Quality; only faces need it
        if self.latency:
            time.sleep(self.latency)
        with self._stats_lock:
            self.stats.faces += len(faces)
            if "S3Object" in image:
                s3_object = image["S3Object"]
                self.stats.analysed[(s3_object.get("Bucket"), s3_object.get("Name"), s3_object.get("Version"))] += 1
        return {"FaceDetails": [face_detail(f, width, height, gray) for f in faces if gray is not None]}

    def _read_s3(self, s3_object: dict[str, Any]) -> bytes:
        params: GetObjectRequestTypeDef = {"Bucket": s3_object.get("Bucket", ""), "Key": s3_object.get("Name", "")}
        if s3_object.get("Version"):
            params["VersionId"] = s3_object["Version"]
        try:
            response = self.s3.get_object(**params)
        except ClientError as exc:
            log.info("S3 object unreadable: %s", exc)
            raise RekognitionError(
                "InvalidS3ObjectException",
                "Unable to get object metadata from S3. Check object key, region and/or access permissions.",
            ) from exc
        if int(response.get("ContentLength", 0)) > MAX_S3_BYTES:
            response["Body"].close()
            raise RekognitionError("ImageTooLargeException", "Image size is too large.")
        body: bytes = response["Body"].read()
        return body

    @staticmethod
    def _read_bytes(encoded: str) -> bytes:
        try:
            data = base64.b64decode(encoded, validate=True)
        except (ValueError, TypeError):
            raise RekognitionError("InvalidParameterException", "Request has invalid parameters") from None
        if len(data) > MAX_INLINE_BYTES:
            raise RekognitionError("ImageTooLargeException", "Image size is too large.")
        return data

    # ---- HTTP ----------------------------------------------------------------------------------
    def handle(self, target: str, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers: dict[str, str] = {}
        if target != TARGET:
            return 400, {"__type": "UnknownOperationException", "message": f"{target} is not emulated"}, headers
        try:
            request = json.loads(body or b"{}")
            if "ALL" in (request.get("Attributes") or []):
                log.warning(ALL_ONLY_NOTE)
                headers["x-facepipe-emulator-note"] = ALL_ONLY_NOTE
            return 200, self.detect_faces(request), headers
        except RekognitionError as exc:
            if exc.code != "ThrottlingException":
                with self._stats_lock:
                    self.stats.errors += 1
            return exc.status, {"__type": exc.code, "Message": exc.message}, headers
        except json.JSONDecodeError:
            return 400, {"__type": "SerializationException", "Message": "request body is not JSON"}, headers
        except Exception:  # a bug here must still answer like the service would
            log.exception("emulator failure")
            return 500, {"__type": "InternalServerError", "Message": "Internal server error"}, headers

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, payload, extra = emulator.handle(self.headers.get("X-Amz-Target", ""), self.rfile.read(length))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s " + format, self.address_string(), *args)

        self._server = LoopbackServer(Handler, "detectfaces-emulator", host, port)
        return self._server.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def decode(data: bytes) -> np.ndarray:
    """Bytes -> upright RGB pixels, with Rekognition's format and size rules."""
    try:
        opened = Image.open(io.BytesIO(data))
        if opened.format not in ("JPEG", "PNG"):
            raise RekognitionError("InvalidImageFormatException", "Request has invalid image format")
        upright = ImageOps.exif_transpose(opened)  # boxes are relative to the upright image, as Rekognition's are
        rgb = np.asarray(upright.convert("RGB"))
    except RekognitionError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise RekognitionError("InvalidImageFormatException", "Request has invalid image format") from None
    height, width = rgb.shape[:2]
    if width < MIN_PIXELS or height < MIN_PIXELS:
        raise RekognitionError("InvalidParameterException", "Request has invalid parameters")
    return rgb


def face_detail(face: Face, width: int, height: int, gray: np.ndarray) -> dict[str, Any]:
    x1, y1, x2, y2 = face.box
    return {
        "BoundingBox": {
            "Width": (x2 - x1) / width,
            "Height": (y2 - y1) / height,
            "Left": x1 / width,
            "Top": y1 / height,
        },
        "Landmarks": [
            {"Type": t, "X": x / width, "Y": y / height}
            for t, (x, y) in zip(LANDMARK_TYPES, face.landmarks, strict=True)
        ],
        "Pose": pose(face.landmarks, width, height),
        "Quality": quality(gray, face.box),
        "Confidence": min(100.0, face.score * 100.0),
    }


def pose(points: tuple[tuple[float, float], ...], width: int, height: int) -> dict[str, float]:
    """Roll from the eye line; Yaw and Pitch from solvePnP on a generic five-point face (rough)."""
    (lx, ly), (rx, ry) = points[0], points[1]
    roll = math.degrees(math.atan2(ry - ly, rx - lx))
    camera = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)
    image_points = np.array(points, dtype=np.float64)
    # Image y grows downwards; the model's grows upwards.
    model = _MODEL_POINTS * np.array([1.0, -1.0, 1.0])
    yaw = pitch = 0.0
    ok, rvec, _ = cv2.solvePnP(model, image_points, camera, None, flags=cv2.SOLVEPNP_EPNP)
    if ok:
        rotation, _ = cv2.Rodrigues(rvec)
        sy = math.hypot(rotation[0, 0], rotation[1, 0])
        pitch = math.degrees(math.atan2(-rotation[2, 1], rotation[2, 2])) if sy > GIMBAL_LOCK else 0.0
        yaw = math.degrees(math.atan2(-rotation[2, 0], sy))
        pitch = (pitch + 180.0) % 360.0 - 180.0
        if abs(pitch) > QUARTER_TURN:
            pitch = pitch - 180.0 if pitch > 0 else pitch + 180.0
    return {"Roll": _clamp(roll, 180), "Yaw": _clamp(yaw, 180), "Pitch": _clamp(pitch, 180)}


def quality(gray: np.ndarray, box: tuple[float, float, float, float]) -> dict[str, float]:
    """Brightness: the crop's mean (0-100). Sharpness: variance of its Laplacian, squashed to 0-100."""
    x1, y1, x2, y2 = (round(v) for v in box)
    crop = gray[max(0, y1) : max(y1 + 1, y2), max(0, x1) : max(x1 + 1, x2)]
    if crop.size == 0:
        return {"Brightness": 0.0, "Sharpness": 0.0}
    brightness = float(crop.mean()) / 255.0 * 100.0
    variance = float(cv2.Laplacian(crop, cv2.CV_64F).var())
    sharpness = 100.0 * (1.0 - math.exp(-variance / 500.0))
    return {"Brightness": brightness, "Sharpness": sharpness}


def _clamp(value: float, limit: float) -> float:
    return max(-limit, min(limit, value))
