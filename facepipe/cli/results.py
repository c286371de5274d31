"""`results` (what happened to each image) and `show` (an image's faces drawn onto it)."""

from __future__ import annotations

import argparse
import json
import textwrap

from detect_faces.contract import Status
from facepipe import ops

from .base import Subcommands, operator_command, target_of
from .format import table


def cmd_results(args: argparse.Namespace) -> int:
    target = target_of(args)
    rows = []
    for result in ops.list_results(target, args.where, include_deleted=args.all, with_faces=args.json):
        if args.json:
            print(json.dumps(ops.result_json(result)))
        else:
            faces = "-" if result.face_count is None or result.status != Status.DETECTED else str(result.face_count)
            rows.append([result.key, result.status, faces, textwrap.shorten(result.reason or "", 70),
                         result.finished_at or result.event_time or ""])  # fmt: skip
    if not args.json:
        print(table(rows, ["key", "status", "faces", "reason", "time"]) if rows else "no results")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    if args.redacted:
        copy = ops.show_redacted(target_of(args), args.uri, args.output)
        version = copy.result.version_id
        print(
            f"{copy.path}: the redacted copy of {args.uri}"
            + (f" (version {version})" if version else "")
            + f", from {copy.uri}"
            + (f" ({copy.redaction})" if copy.redaction else "")
        )
        return 0
    path, result = ops.show(target_of(args), args.uri, args.output)
    print(
        f"{path}: {result.face_count} face(s) drawn on {args.uri}"
        + (f" (version {result.version_id})" if result.version_id else "")
    )
    return 0


def register(sub: Subcommands) -> None:
    results = operator_command(
        sub,
        "results",
        "one row per image: key, status, faces, reason, time",
        "python -m facepipe results photos/ --local",
        cmd_results,
    )
    results.add_argument(
        "where", nargs="?", default="", help="s3://bucket/prefix, or a key prefix (in every watched bucket)"
    )
    results.add_argument("--json", action="store_true", help="one JSON object per line, with every FaceDetail")
    results.add_argument("--all", action="store_true", help="include deleted images' tombstones")

    show = operator_command(
        sub,
        "show",
        "draw an image's stored boxes and landmarks into a PNG/JPEG",
        "python -m facepipe show s3://my-bucket/photos/team.jpg -o team.png\n"
        "  python -m facepipe show s3://my-bucket/photos/team.jpg --redacted -o team-redacted.jpg",
        cmd_show,
    )
    show.add_argument("uri", help="s3://bucket/key")
    show.add_argument(
        "-o", "--output", help="output file (.png or .jpg; default <name>.annotated.png, <name>.redacted.<ext>)"
    )
    show.add_argument(
        "--redacted",
        action="store_true",
        help="the image's redacted copy (facepipe:redaction, `local up --redaction`) instead of the boxes drawn",
    )
