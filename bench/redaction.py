"""Redaction cost: ms per megapixel and peak memory of a redacted copy (decode, orient, hide the faces, encode) at
2, 12 and 24 MP for each mode, the memory size that follows, and what CenterFace finds in the copies (at the chosen
strengths, and as the blur's strength and the pixelation's block count vary).

.venv/bin/python bench/redaction.py [--repeat 3] [--faces 10] [--no-detector]

Each case runs in its own interpreter that first imports what the function imports (boto3, Powertools, Pillow and
the redaction package): its resident set then is the baseline; the source's bytes are read after it (as the GET's
body is), and the peak resident set (/proc's VmHWM) over the baseline is the case's memory. Sources are
mosaics of the bundled photos at their own resolution (real detail at every scale, not an upscaled blur), JPEG at
quality 90; `rotated` is stored turned with EXIF Orientation 6 (the copy is turned upright: the worst case of the
memory rule); PNG is the lossless path. Ten faces of ~5 % of the image's width, as Rekognition boxes.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import PIL
from common import median
from PIL import Image

from facepipe.common import photos

HERE = Path(__file__).resolve().parent
SIZES = {2: (1632, 1224), 12: (4000, 3000), 24: (6000, 4000)}
MODES = ("blur", "pixelate", "fill")
# Lambda: CPU in proportion to memory, one full vCPU at 1,769 MB. Prices as bench/warm_cost.py (us-east-1, arm64).
FULL_VCPU_MB = 1769
LAMBDA_SIZES_MB = (512, 1024, 1536, 1769, 2048)
PRICES = {"lambda_arm_gb_s": 0.0000133334, "lambda_request": 0.20 / 1e6, "s3_get": 0.0004 / 1000,
          "s3_put": 0.005 / 1000, "dynamodb_rru": 0.125 / 1e6, "logs_ingest_gb": 0.50}  # fmt: skip
REKOGNITION_MAX_BYTES = 15  # MB: the largest image DetectFaces reads from S3
AWS_CALLS_MS = 150.0  # Query + HEAD + GET + PUT of a few-MB image, waiting (not CPU): an assumption, stated in the doc
LOG_BYTES = 1200  # one log line and one EMF blob per image


def mosaic(width: int, height: int) -> Image.Image:
    tiles = [
        Image.open(io.BytesIO(photos.photo(name))).convert("RGB") for name in sorted(photos.FACES | photos.NO_FACES)
    ]
    canvas = Image.new("RGB", (width, height))
    y, n = 0, 0
    while y < height:
        x, row = 0, 0
        while x < width:
            tile = tiles[n % len(tiles)]
            canvas.paste(tile, (x, y))
            x += tile.width
            row = max(row, tile.height)
            n += 1
        y += row
    return canvas


def source(mp: int, kind: str) -> bytes:
    width, height = SIZES[mp]
    image = mosaic(width, height)
    out = io.BytesIO()
    if kind == "png":
        image.save(out, format="PNG")
    elif kind == "rotated":
        exif = Image.Exif()
        exif[0x0112] = 6
        image.transpose(Image.Transpose.ROTATE_90).save(out, format="JPEG", quality=90, exif=exif.tobytes())
    else:
        image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def faces(count: int) -> list[dict[str, object]]:
    """`count` faces of 5 % x 7 % of the image, on a grid."""
    columns = math.ceil(math.sqrt(count))
    return [
        {
            "BoundingBox": {
                "Left": 0.05 + 0.9 * (i % columns) / columns,
                "Top": 0.05 + 0.9 * (i // columns) / columns,
                "Width": 0.05,
                "Height": 0.07,
            },
            "Confidence": 99.0,
        }
        for i in range(count)
    ]


def function_package() -> None:
    """Make `import redaction` find the function's package, not this script (whose folder Python puts first)."""
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]


def peak_rss_mb() -> float:
    """This process's peak resident set: /proc's VmHWM (Linux's ru_maxrss also counts the parent's peak before the
    exec, which would hide a small child's), else getrusage."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(path: str, mode: str, count: int, repeat: int) -> None:
    """One case, in this fresh interpreter: the function's imports, then the source, then the redactions."""
    function_package()
    import boto3  # noqa: F401 - the function's imports make the baseline
    from aws_lambda_powertools import Logger, Metrics  # noqa: F401

    from redaction import handler  # noqa: F401
    from redaction.redact import Mode, redact_image

    baseline = peak_rss_mb()
    data = Path(path).read_bytes()
    times = []
    for _ in range(repeat + 1):  # the first run warms Pillow's codecs up
        started = time.perf_counter()
        redact_image(data, faces(count), mode=Mode(mode), margin=0.15, max_pixels=10**9)
        times.append(time.perf_counter() - started)
    peak = peak_rss_mb()
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak, "ms": median(times[1:]) * 1000, "bytes_in": len(data)}))


def run_case(path: Path, mode: str, count: int, repeat: int) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(path), mode, "--faces", str(count), "--repeat", str(repeat)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def cost_per_million(memory_mb: int, cpu_ms_full_vcpu: float) -> dict[str, float]:
    """Per million Faces Detected events: Lambda at `memory_mb` (its CPU share scales the CPU time), S3, DynamoDB
    and logs."""
    share = min(1.0, memory_mb / FULL_VCPU_MB)
    seconds = (cpu_ms_full_vcpu / share + AWS_CALLS_MS) / 1000
    million = 1e6
    return {
        "Lambda duration": memory_mb / 1024 * seconds * PRICES["lambda_arm_gb_s"] * million,
        "Lambda requests": PRICES["lambda_request"] * million,
        "S3 HEAD + GET": 2 * PRICES["s3_get"] * million,
        "S3 PUT": PRICES["s3_put"] * million,
        "DynamoDB Query (1 RRU)": PRICES["dynamodb_rru"] * million,
        "CloudWatch Logs": LOG_BYTES / 1e9 * PRICES["logs_ingest_gb"] * million,
    }


def overlaps(face: Any, boxes: Sequence[Any]) -> bool:
    """Whether a detected face (CenterFace's, with .box) overlaps any of the redacted boxes."""
    x1, y1, x2, y2 = face.box
    return any(x1 < b.right and b.left < x2 and y1 < b.bottom and b.top < y2 for b in boxes)


def face_photos(detector: Any) -> Iterator[tuple[str, int, bytes, list[dict[str, Any]]]]:
    """Each bundled face photo at 1x and 3x: its name, the scale, the JPEG (quality 90) and the faces
    CenterFace finds in it as Rekognition-style BoundingBoxes."""
    import numpy as np

    for name in sorted(photos.FACES):
        for scale in (1, 3):
            image = Image.open(io.BytesIO(photos.photo(name))).convert("RGB")
            image = image.resize((image.width * scale, image.height * scale), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=90)
            boxes = [{"BoundingBox": {"Left": f.box[0] / image.width, "Top": f.box[1] / image.height,
                                      "Width": (f.box[2] - f.box[0]) / image.width,
                                      "Height": (f.box[3] - f.box[1]) / image.height}}
                     for f in detector.detect(np.asarray(image))]  # fmt: skip
            yield name, scale, out.getvalue(), boxes


def detector_table() -> None:
    """What CenterFace finds in the copies of the bundled face photos where the faces were: at its threshold (0.5)
    and at 0.2 (which also finds things that are no face, anywhere: only those over a widened box count)."""
    function_package()
    import numpy as np

    from facepipe.local.centerface import CenterFaceDetector
    from redaction.redact import BLUR_SIGMA, PIXELATE_BLOCKS, Mode, redact_image

    detectors = {t: CenterFaceDetector(threshold=t) for t in (0.5, 0.2)}
    print(f"\nCenterFace on the copies (blur sigma {BLUR_SIGMA} x box, {PIXELATE_BLOCKS} blocks), inside the boxes")
    print(f"{'photo':<18} {'scale':>5} {'margin':>6} {'faces':>5}  " + "  ".join(f"{m:>9}" for m in MODES))
    for name, scale, data, boxes in face_photos(detectors[0.5]):
        for margin in (0.15, 0.0):
            cells = []
            for mode in MODES:
                copy = redact_image(data, boxes, mode=Mode(mode), margin=margin, max_pixels=10**9)
                pixels = np.asarray(Image.open(io.BytesIO(copy.body)).convert("RGB"))
                counts = [sum(overlaps(f, copy.boxes) for f in d.detect(pixels)) for d in detectors.values()]
                cells.append("/".join(map(str, counts)))
            print(f"{name:<18} {scale:>4}x {margin:>6} {len(boxes):>5}  " + "  ".join(f"{c:>9}" for c in cells))
    print("(each cell: faces found over a widened box at threshold 0.5 / 0.2)")


def sweep() -> None:
    """How strong a blur and how coarse a pixelation must be: faces CenterFace (threshold 0.5) still finds over the
    widened boxes, summed over the bundled face photos at 1x and 3x, as the strength varies."""
    function_package()
    import numpy as np

    from facepipe.local.centerface import CenterFaceDetector
    from redaction import redact

    detector = CenterFaceDetector()
    cases = [(data, boxes) for _, _, data, boxes in face_photos(detector)]
    chosen = (redact.BLUR_SIGMA, redact.PIXELATE_BLOCKS)
    print(f"\nfaces still found over the boxes, of {sum(len(b) for _, b in cases)} (6 images)")
    for label, attribute, values, mode in (
        ("blur sigma (x box)", "BLUR_SIGMA", (0.03, 0.05, 0.08, 0.1, 0.15, 0.2), redact.Mode.BLUR),
        ("pixelate blocks", "PIXELATE_BLOCKS", (32, 24, 16, 12, 8), redact.Mode.PIXELATE),
    ):
        for margin in (0.15, 0.0):
            cells = []
            for value in values:
                setattr(redact, attribute, value)
                left = 0
                for data, boxes in cases:
                    copy = redact.redact_image(data, boxes, mode=mode, margin=margin, max_pixels=10**9)
                    pixels = np.asarray(Image.open(io.BytesIO(copy.body)).convert("RGB"))
                    left += sum(overlaps(f, copy.boxes) for f in detector.detect(pixels))
                cells.append(f"{value}: {left}")
            print(f"  {label:<19} margin {margin:<4}  " + "  ".join(cells))
    redact.BLUR_SIGMA, redact.PIXELATE_BLOCKS = chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--faces", type=int, default=10)
    parser.add_argument("--no-detector", action="store_true", help="skip the CenterFace tables")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.faces, args.repeat)
        return
    function_package()
    from redaction.settings import BASELINE_MB, BYTES_PER_PIXEL, max_pixels_for

    cases = [(mp, "jpeg") for mp in SIZES] + [(24, "rotated"), (2, "png"), (12, "png")]
    print(f"Pillow {PIL.__version__}, Python {sys.version.split()[0]}, {args.faces} faces, median of {args.repeat}")
    print(f"{'source':<16} {'mode':<9} {'MB in':>6} {'ms':>7} {'ms/MP':>6} {'+MB':>5} {'B/px':>5} {'base MB':>8}")
    worst_bpp, base, jpeg_ms_per_mp, mb_per_mp = 0.0, 0.0, [], []
    with tempfile.TemporaryDirectory() as folder:
        for mp, kind in cases:
            path = Path(folder) / f"{mp}-{kind}"
            path.write_bytes(source(mp, kind))
            width, height = SIZES[mp]
            pixels = width * height
            for mode in MODES:
                got = run_case(path, mode, args.faces, args.repeat)
                over = got["peak_mb"] - got["baseline_mb"]
                bpp = over * 1024 * 1024 / pixels
                worst_bpp, base = max(worst_bpp, bpp), max(base, got["baseline_mb"])
                per_mp = got["ms"] / (pixels / 1e6)
                if kind == "jpeg":
                    jpeg_ms_per_mp.append(per_mp)
                    mb_per_mp.append(got["bytes_in"] / 2**20 / (pixels / 1e6))
                label = f"{mp} MP {kind}"
                print(f"{label:<16} {mode:<9} {got['bytes_in'] / 1e6:>6.1f} {got['ms']:>7.0f} {per_mp:>6.1f} "
                      f"{over:>5.0f} {bpp:>5.1f} {got['baseline_mb']:>8.0f}")  # fmt: skip
    print(f"\nbaseline (the function's imports): {base:.0f} MB; worst peak over it: {worst_bpp:.1f} bytes per pixel")
    print(f"the memory rule (settings.py): pixels = (memory - {BASELINE_MB} MB) / {BYTES_PER_PIXEL} bytes")
    largest = REKOGNITION_MAX_BYTES / median(mb_per_mp)
    chosen = next(m for m in LAMBDA_SIZES_MB if max_pixels_for(m) >= largest * 1e6)
    for memory in LAMBDA_SIZES_MB:
        mark = "  <- chosen" if memory == chosen else ""
        print(f"  {memory:>5} MB: decodes up to {max_pixels_for(memory) / 1e6:>4.0f} MP, "
              f"{memory / FULL_VCPU_MB:.2f} vCPU{mark}")  # fmt: skip
    print(f"(a 24 MP JPEG stored rotated needs {base + worst_bpp * 24e6 / 2**20:.0f} MB; the largest JPEG Rekognition "
          f"reads from S3, 15 MB, holds ~{largest:.0f} MP of this detail at quality 90: the smallest size that "
          f"decodes it is {chosen} MB)")  # fmt: skip
    ms_per_mp = median(jpeg_ms_per_mp)
    print(f"\nJPEG, median over sizes and modes: {ms_per_mp:.1f} ms per MP on this machine")
    for memory in (chosen, FULL_VCPU_MB):
        for mp in (2, 12, 24):
            costs = cost_per_million(memory, ms_per_mp * mp)
            parts = ", ".join(f"{k} ${v:,.2f}" for k, v in costs.items())
            print(f"  {memory} MB, {mp} MP: ${sum(costs.values()):,.2f} per million images ({parts})")
    if not args.no_detector:
        detector_table()
        sweep()


if __name__ == "__main__":
    main()
