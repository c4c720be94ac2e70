"""Command-line options shared by every `dreamgym train-*` subcommand."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from experiments.arg_types import positive_int
from world_models.runs import new_run_dir, parse_overrides
from world_models.trainer import TrainConfig


def add_train_arguments(parser: argparse.ArgumentParser, experiment: str) -> None:
    """Options for data location, run folder, resuming, model settings and optimisation."""
    parser.add_argument("--data-dir", help="Minari datasets root (default: MINARI_DATASETS_PATH)")
    parser.add_argument("--run-dir", help=f"run folder (default: runs/{experiment}/<time>/)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --run-dir from its checkpoint"
    )
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help=(
            "model config setting (repeatable), e.g. --set latent_dim=16; for SB3 agents an "
            "algorithm argument or frame_stack"
        ),
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="CPU threads for torch (default: torch's; 1 is often fastest on a busy machine)",
    )
    parser.set_defaults(experiment=experiment)
    group = parser.add_argument_group("optimisation")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        group.add_argument(
            flag, type=type(field.default), default=None, help=f"default {field.default}"
        )


def train_config_from_args(args: argparse.Namespace) -> tuple[Path, TrainConfig, dict[str, Any]]:
    """(run folder, TrainConfig, model overrides) from parsed options."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.resume and not args.run_dir:
        raise ValueError("--resume needs --run-dir: the folder of the run to continue")
    run_dir = Path(args.run_dir) if args.run_dir else new_run_dir("runs", args.experiment)
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name) is not None
    }
    return run_dir, TrainConfig(**given), parse_overrides(args.set)
