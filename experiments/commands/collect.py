"""`dreamgym collect`: record episodes of a policy in a real env as a Minari dataset."""

from __future__ import annotations

import argparse

from experiments.arg_types import positive_int

NAME = "collect"
HELP = "record episodes of an expert, random or noisy policy as a Minari dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="env id, e.g. MiniGridPixels-DoorKey-8x8-v0")
    parser.add_argument(
        "--policy", required=True, choices=("expert", "random", "noisy"), help="who acts"
    )
    parser.add_argument("--episodes", type=positive_int, required=True, help="number of episodes")
    parser.add_argument("--dataset-id", required=True, help="Minari id, e.g. doorkey/expert-v0")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="datasets root (default: $MINARI_DATASETS_PATH, else ~/.minari/datasets)",
    )
    parser.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")
    parser.add_argument(
        "--epsilon", type=float, default=0.2, help="random-action probability of --policy noisy"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing dataset")


def run(args: argparse.Namespace) -> int:
    from data_collection.datasets import load_dataset
    from data_collection.recording import collect

    path = collect(
        args.env,
        args.policy,
        args.episodes,
        args.dataset_id,
        data_dir=args.data_dir,
        seed=args.seed,
        force=args.force,
        epsilon=args.epsilon,
    )
    dataset = load_dataset(args.dataset_id, args.data_dir)
    print(f"wrote {dataset.total_episodes} episodes ({dataset.total_steps} steps) to {path}")
    return 0
