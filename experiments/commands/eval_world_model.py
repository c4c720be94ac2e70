"""`dreamgym eval-world-model`: open-loop rollouts of a bundle on held-out episodes."""

from __future__ import annotations

import argparse

from experiments.arg_types import device, positive_int
from world_models.perceptual import BACKENDS
from world_models.runs import new_run_dir

NAME = "eval-world-model"
HELP = (
    "Score a world-model bundle per horizon beside hold-last-frame, plus its reward/continue heads."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", required=True, help="bundle folder")
    parser.add_argument("--dataset", required=True, help="Minari dataset id (held-out episodes)")
    parser.add_argument("--data-dir", help="Minari datasets root (default: MINARI_DATASETS_PATH)")
    parser.add_argument(
        "--context", type=positive_int, default=4, help="real context frames (default 4)"
    )
    parser.add_argument(
        "--horizon", type=positive_int, default=16, help="imagined frames (default 16)"
    )
    parser.add_argument(
        "--windows", type=positive_int, default=64, help="held-out windows (default 64)"
    )
    parser.add_argument(
        "--num-steps",
        type=positive_int,
        nargs="+",
        default=[4],
        help="shortcut steps K to compare, e.g. 4 64",
    )
    parser.add_argument(
        "--perceptual",
        choices=BACKENDS,
        default="stlpips",
        help="perceptual distance per frame: stlpips (offline, default), lpips (optional extra), "
        "none (skip)",
    )
    parser.add_argument("--device", type=device, default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--out", help="report folder (default: runs/eval-world-model/<time>/)")


def run(args: argparse.Namespace) -> int:
    from world_models.evaluate import evaluate_world_model, summary_table, write_report

    results = evaluate_world_model(
        args.bundle,
        args.dataset,
        data_dir=args.data_dir,
        context=args.context,
        horizon=args.horizon,
        windows=args.windows,
        num_steps=tuple(args.num_steps),
        device=args.device,
        perceptual_backend=args.perceptual,
        progress=True,
    )
    out = write_report(results, args.out or new_run_dir("runs", "eval-world-model"))
    print(summary_table(results))
    print(f"\nreport: {out}")
    return 0
