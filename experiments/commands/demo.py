"""`dreamgym demo`: the main job (see README): the MiniGrid DoorKey pipeline on CPU
(`doorkey-cpu`: data, world model, policies in the dream, scores, report), then a short PPO run
inside the shipped `Dream-League-v0`, scored in `LaneSim-v0`."""

from __future__ import annotations

import argparse

from experiments.arg_types import positive_int

NAME = "demo"
HELP = (
    "The main job: the DoorKey pipeline (config doorkey-cpu, 20-30 min on 2 cores), then a "
    "short PPO run in the shipped Dream-League-v0."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default="doorkey-cpu", help="pipeline config (default: doorkey-cpu)"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--out",
        help="run folder (default: the newest unfinished demo run, else a new "
        "runs/<experiment>/<time>/); an existing run resumes",
    )
    where.add_argument(
        "--new", action="store_true", help="start a new run folder even if one is unfinished"
    )
    parser.add_argument(
        "--ppo-steps",
        type=positive_int,
        default=2048,
        help="PPO steps in Dream-League-v0 (default 2048)",
    )
    parser.add_argument(
        "--episodes", type=positive_int, default=3, help="LaneSim-v0 episodes scoring that agent"
    )
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch")


def run(args: argparse.Namespace) -> int:
    from agents.baselines import train_sb3
    from agents.evaluation import evaluate_policy, format_results, load_agent
    from experiments.commands.pipeline import execute
    from experiments.pipeline_config import prepare
    from experiments.pipeline_report import summary_tables

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config, run_dir = prepare(args.config, args.out, new=args.new)
    if not execute(config, run_dir):
        return 1
    print(f"\n{summary_tables(run_dir)}\n\nreport: {run_dir / 'report.md'}\n")
    print(
        f"PPO for {args.ppo_steps} steps in Dream-League-v0 (the shipped world model)", flush=True
    )
    league = run_dir / "league-ppo"
    path = train_sb3(
        "ppo", "Dream-League-v0", league, steps=args.ppo_steps, device=config["device"]
    )
    results = evaluate_policy(
        load_agent(f"ppo:{path}", "LaneSim-v0"), "LaneSim-v0", args.episodes, out_dir=league
    )
    print(f"PPO agent {path}: {format_results(results)}; videos in {league}")
    return 0
