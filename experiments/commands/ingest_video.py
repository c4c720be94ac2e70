"""`dreamgym ingest-video`: a gameplay video (or frame folder) plus labels as a Minari dataset."""

from __future__ import annotations

import argparse

from experiments.arg_types import positive_int

NAME = "ingest-video"
HELP = "turn a gameplay video or frame folder (+ optional labels) into a LaneSim-style dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="video file (mp4, webm, avi, ...) or folder of PNG/JPG frames")
    parser.add_argument(
        "--labels",
        default=None,
        help="JSON Lines file, one object per source frame: move, keys, gold, health (see "
        "data_collection/video.py); without it every step is unlabeled",
    )
    parser.add_argument("--fps", type=float, default=20.0, help="output frame rate (default 20)")
    parser.add_argument(
        "--source-fps",
        type=float,
        default=None,
        help="frame rate of a frame folder (default: --fps); overrides a video's own",
    )
    parser.add_argument(
        "--size", type=positive_int, default=64, help="output image side (default 64)"
    )
    parser.add_argument(
        "--resize", choices=("squash", "letterbox"), default="squash", help="how to fit frames"
    )
    parser.add_argument("--dataset-id", required=True, help="Minari id, e.g. league/replays-v0")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="datasets root (default: $MINARI_DATASETS_PATH, else ~/.minari/datasets)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing dataset")


def run(args: argparse.Namespace) -> int:
    from data_collection.datasets import load_dataset
    from data_collection.video import ingest_video

    path = ingest_video(
        args.path,
        args.dataset_id,
        labels=args.labels,
        fps=args.fps,
        size=args.size,
        resize=args.resize,
        source_fps=args.source_fps,
        data_dir=args.data_dir,
        force=args.force,
    )
    dataset = load_dataset(args.dataset_id, args.data_dir)
    kind = "labeled" if args.labels else "unlabeled"
    print(f"wrote {dataset.total_steps + 1} {kind} frames to {path}")
    return 0
