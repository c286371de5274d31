"""The whole local pipeline on real photos (CenterFace, no quota): images per second end to end, and the
time from upload to stored result.

    .venv/bin/python bench/pipeline.py [--n 200] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import time

from common import median, percentile

from detect_faces.contract import Status
from detect_faces.results import ResultsStore
from facepipe.common import photos
from facepipe.local import LocalSettings, running


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    bodies = [photos.photo(n) for n in ("astronaut.jpg", "camera.jpg", "grace_hopper.jpg", "coffee.jpg")]
    with running(LocalSettings(concurrency=args.concurrency, log_level="ERROR")) as pipeline:
        assert pipeline.runtime is not None
        s3 = pipeline.client("s3")
        store = ResultsStore(pipeline.client("dynamodb"), pipeline.table)
        pipeline.wait_for_events(1)

        # Latency: one upload at a time, time until its result is stored.
        latencies = []
        for i in range(20):
            key = f"latency/{i}.jpg"
            start = time.perf_counter()
            s3.put_object(Bucket=pipeline.bucket, Key=key, Body=bodies[i % len(bodies)])
            while (result := store.get(pipeline.bucket, key)) is None or result.status == Status.PROCESSING:
                time.sleep(0.005)
            latencies.append(time.perf_counter() - start)

        # Throughput: N uploads as fast as one client sends them, until every result is stored.
        start = time.perf_counter()
        for i in range(args.n):
            s3.put_object(Bucket=pipeline.bucket, Key=f"throughput/{i}.jpg", Body=bodies[i % len(bodies)])
        uploaded = time.perf_counter() - start
        pipeline.wait_for_events(1 + 20 + args.n, timeout=600)
        total = time.perf_counter() - start
    print(f"upload -> stored result, one at a time: median {median(latencies) * 1000:.0f} ms,"
          f" p95 {percentile(latencies, 95) * 1000:.0f} ms")  # fmt: skip
    print(f"{args.n} images through the pipeline (concurrency {args.concurrency}): {total:.1f} s,"
          f" {args.n / total:.1f} images/s end to end (uploads alone took {uploaded:.1f} s)")  # fmt: skip
    print("(target: >= 10 images/s end to end)")


if __name__ == "__main__":
    main()
