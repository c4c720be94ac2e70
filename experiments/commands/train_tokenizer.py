"""`dreamgym train-tokenizer`: train a video tokenizer on a Minari dataset."""

from __future__ import annotations

import argparse

from experiments.arg_types import positive_int
from experiments.train_args import add_train_arguments, train_config_from_args
from world_models.perceptual import BACKENDS

NAME = "train-tokenizer"
HELP = "Train a video tokenizer (CNN or causal transformer with MAE) on a dataset."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="Minari dataset id")
    parser.add_argument("--kind", choices=("cnn", "transformer"), default="cnn")
    parser.add_argument(
        "--perceptual",
        choices=BACKENDS,
        default="stlpips",
        help="perceptual loss backend (default: stlpips, shipped offline)",
    )
    parser.add_argument(
        "--perceptual-frames",
        type=positive_int,
        help="compute the perceptual term on at most this many random frames per batch "
        "(it dominates CPU cost; default: all)",
    )
    add_train_arguments(parser, experiment="tokenizer")


def run(args: argparse.Namespace) -> int:
    from world_models.train_tokenizer import train_tokenizer

    run_dir, train, overrides = train_config_from_args(args)
    metrics = train_tokenizer(
        args.dataset,
        run_dir,
        kind=args.kind,
        train=train,
        model_overrides=overrides,
        perceptual=args.perceptual,
        perceptual_frames=args.perceptual_frames,
        data_dir=args.data_dir,
        resume=args.resume,
    )
    if metrics:
        print(f"held-out reconstruction: PSNR {metrics['psnr']:.2f} dB, MSE {metrics['mse']:.5f}")
        print(f"tokenizer: {run_dir / 'tokenizer'}")
    return 0
