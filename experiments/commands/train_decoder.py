"""`dreamgym train-decoder`: fine-tune a bundle's decoder on its own dreams."""

from __future__ import annotations

import argparse

from experiments.arg_types import positive_int
from experiments.train_args import add_train_arguments, train_config_from_args
from world_models.perceptual import BACKENDS

NAME = "train-decoder"
HELP = (
    "Fine-tune a bundle's decoder to draw its dynamics' open-loop dreams as the real frames "
    "(encoder and dynamics frozen); writes a new bundle."
)
IMAGINED = 16  # imagined frames per training window unless --seq-len says otherwise


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", required=True, help="tokenizer + dynamics bundle folder")
    parser.add_argument(
        "--dataset",
        required=True,
        help="Minari dataset id of the bundle's env (its training episodes are used)",
    )
    parser.add_argument(
        "--context",
        type=positive_int,
        default=4,
        help="real frames each training dream starts from (default 4); --seq-len is the "
        f"whole window (default context + {IMAGINED})",
    )
    parser.add_argument(
        "--dream-windows",
        type=positive_int,
        default=2048,
        help="training windows dreamed once before training, the pool batches are drawn from "
        "(default 2048)",
    )
    parser.add_argument(
        "--recon-share",
        type=float,
        default=0.25,
        help="share of each batch's windows decoded from the real frames' own latents, which "
        "keeps the decoder's reconstructions sharp (default 0.25)",
    )
    parser.add_argument(
        "--perceptual",
        choices=BACKENDS,
        default="none",
        help="perceptual term of the reconstruction loss (default none: MSE only)",
    )
    parser.add_argument(
        "--eval-windows",
        type=positive_int,
        default=64,
        help="held-out windows dreamed and scored with the old and the new decoder at the end "
        "(default 64)",
    )
    add_train_arguments(parser, experiment="decoder")


def run(args: argparse.Namespace) -> int:
    from world_models.train_decoder import train_decoder

    if args.set:
        raise ValueError("train-decoder keeps the bundle's models as they are: it takes no --set")
    if args.seq_len is None:
        args.seq_len = args.context + IMAGINED
    run_dir, train, _ = train_config_from_args(args)
    bundle, metrics = train_decoder(
        args.bundle,
        args.dataset,
        run_dir,
        train=train,
        context=args.context,
        dream_windows=args.dream_windows,
        recon_share=args.recon_share,
        perceptual=args.perceptual,
        data_dir=args.data_dir,
        resume=args.resume,
        eval_windows=args.eval_windows,
    )
    if metrics:
        print(
            f"held-out dreams ({args.eval_windows} windows): PSNR "
            f"{metrics['bundle_decoder']:.2f} dB with the bundle's decoder, "
            f"{metrics['trained_decoder']:.2f} dB with the trained one"
        )
        print(f"bundle: {bundle}")
    return 0
