"""`dreamgym train-dynamics`: train a dynamics model and export a bundle."""

from __future__ import annotations

import argparse

from experiments.arg_types import positive_int
from experiments.train_args import add_train_arguments, train_config_from_args

NAME = "train-dynamics"
HELP = (
    "Train a dynamics model and export a bundle: Dreamer 4-style on a trained tokenizer's "
    "latents, or the masked video model on pixels."
)
KINDS = ("dreamer", "masked-video")
# options of --kind masked-video only; unset ones take train_masked_video's defaults
MASKED_VIDEO_OPTIONS = ("max_speed", "speed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default="dreamer",
        help="dreamer (default): needs --tokenizer; masked-video: CoPilot4D-style, no tokenizer",
    )
    parser.add_argument(
        "--dataset",
        required=True,
        help="Minari dataset id; with --kind masked-video also 'generated' (fresh Moving MNIST)",
    )
    parser.add_argument(
        "--tokenizer",
        help="tokenizer, bundle or train-tokenizer run folder (--kind dreamer)",
    )
    parser.add_argument(
        "--init-from",
        help="model, bundle or run folder whose weights start the run (same architecture; "
        "fresh optimizer and schedule), e.g. a shipped bundle to train further",
    )
    parser.add_argument(
        "--context-length",
        type=positive_int,
        help="real frames in each bundle start context (default: dreamer 1, masked-video 10)",
    )
    parser.add_argument(
        "--horizon", type=positive_int, default=200, help="dream episode length (default 200)"
    )
    parser.add_argument(
        "--holdout",
        type=float,
        default=0.1,
        help="share of dataset episodes held out of training (default 0.1)",
    )
    group = parser.add_argument_group("masked-video")
    group.add_argument(
        "--max-speed",
        type=float,
        help="generated data: speed in px/frame of an action of 1 (default 3)",
    )
    group.add_argument(
        "--speed",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="generated data: the digits' speed range in px/frame (default 1 2)",
    )
    add_train_arguments(parser, experiment="dynamics")


def _masked_video_options(args: argparse.Namespace) -> dict:
    """The masked-video options given; checks that the options fit --kind."""
    given = {k: getattr(args, k) for k in MASKED_VIDEO_OPTIONS if getattr(args, k) is not None}
    if args.kind == "masked-video":
        if args.tokenizer:
            raise ValueError("--kind masked-video reads pixels and takes no --tokenizer")
        return given
    if not args.tokenizer:
        raise ValueError("--kind dreamer needs --tokenizer (or pass --kind masked-video)")
    if args.dataset == "generated":
        raise ValueError("--dataset generated is for --kind masked-video only")
    if given:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
        raise ValueError(f"{flags}: for --kind masked-video only")
    return given


def run(args: argparse.Namespace) -> int:
    options = _masked_video_options(args)
    if args.context_length is not None:
        options["context_length"] = args.context_length
    run_dir, train, overrides = train_config_from_args(args)
    common = dict(
        train=train,
        model_overrides=overrides,
        data_dir=args.data_dir,
        holdout=args.holdout,
        horizon=args.horizon,
        init_from=args.init_from,
        resume=args.resume,
        **options,
    )
    if args.kind == "masked-video":
        from world_models.train_masked_video import train_masked_video

        bundle = train_masked_video(args.dataset, run_dir, **common)
    else:
        from world_models.train_dynamics import train_dynamics

        bundle = train_dynamics(args.dataset, args.tokenizer, run_dir, **common)
    print(f"bundle: {bundle}")
    return 0
