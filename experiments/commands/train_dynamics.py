"""`dreamgym train-dynamics`: train the dynamics model and export a bundle."""

from __future__ import annotations

import argparse

from experiments.train_args import add_train_arguments, train_config_from_args

NAME = "train-dynamics"
HELP = "Train the Dreamer 4-style dynamics model on a dataset through a trained tokenizer."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="Minari dataset id")
    parser.add_argument(
        "--tokenizer", required=True, help="tokenizer folder, or a train-tokenizer run folder"
    )
    parser.add_argument(
        "--context-length", type=int, default=1, help="real frames in each bundle start context"
    )
    parser.add_argument("--horizon", type=int, default=200, help="dream episode length")
    add_train_arguments(parser, experiment="dynamics")


def run(args: argparse.Namespace) -> int:
    from world_models.train_dynamics import train_dynamics

    run_dir, train, overrides = train_config_from_args(args)
    bundle = train_dynamics(
        args.dataset,
        args.tokenizer,
        run_dir,
        train=train,
        model_overrides=overrides,
        data_dir=args.data_dir,
        context_length=args.context_length,
        horizon=args.horizon,
        resume=args.resume,
    )
    print(f"bundle: {bundle}")
    return 0
