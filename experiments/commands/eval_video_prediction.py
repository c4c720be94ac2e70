"""`dreamgym eval-video-prediction`: the Moving MNIST benchmark (10 frames in, 10 out)."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.arg_types import device, positive_int

NAME = "eval-video-prediction"
HELP = "Score the masked video model on Moving MNIST per horizon beside hold-last-frame."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="masked video bundle or model folder (train-dynamics)"
    )
    parser.add_argument(
        "--mnist-test-seq", help="also score the standard mnist_test_seq.npy (no actions)"
    )
    parser.add_argument(
        "--bundle", help="a Dreamer-style bundle (tokenizer + dynamics) to score in the same run"
    )
    parser.add_argument("--sequences", type=positive_int, default=256, help="sequences per source")
    parser.add_argument("--context", type=positive_int, default=10, help="frames in (default 10)")
    parser.add_argument("--horizon", type=positive_int, default=10, help="frames out (default 10)")
    parser.add_argument(
        "--num-steps", type=positive_int, help="decoding steps K (default: the model's)"
    )
    parser.add_argument(
        "--decode",
        choices=("median", "sample"),
        help="each pixel's median level, or a draw at --temperature (default: the model's)",
    )
    parser.add_argument(
        "--temperature", type=float, help="initial sampling temperature (needs --decode sample)"
    )
    parser.add_argument("--confidence-noise", type=float, help="initial Gumbel confidence noise")
    parser.add_argument("--guidance", type=float, help="classifier-free guidance weight w")
    parser.add_argument(
        "--without-actions",
        action="store_true",
        help="also score the masked video model with every action hidden",
    )
    parser.add_argument(
        "--score-size",
        type=positive_int,
        help="score at this frame size (e.g. 64, the published protocol; default: the model's)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=64, help="sequences per forward pass"
    )
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", type=device, default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="report folder (default: <model>/video_prediction)")


def run(args: argparse.Namespace) -> int:
    import torch

    from world_models.video_prediction import (
        evaluate_video_prediction,
        summary_table,
        write_report,
    )

    if args.sequences < 1 or args.batch_size < 1:
        raise ValueError("--sequences and --batch-size must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    results = evaluate_video_prediction(
        args.model,
        num_sequences=args.sequences,
        context=args.context,
        horizon=args.horizon,
        mnist_test_seq=args.mnist_test_seq,
        bundle=args.bundle,
        sampling={
            "num_steps": args.num_steps,
            "temperature": args.temperature,
            "confidence_noise": args.confidence_noise,
            "guidance": args.guidance,
            "median": None if args.decode is None else args.decode == "median",
        },
        without_actions=args.without_actions,
        score_size=args.score_size,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
        progress=True,
    )
    out = write_report(results, args.out or Path(args.model) / "video_prediction")
    print(summary_table(results))
    print(f"report: {out}")
    return 0
