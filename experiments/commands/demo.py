"""`dreamgym demo`: the main job (see README): the MiniGrid DoorKey pipeline on CPU
(`doorkey-cpu`: data, world model, policies in the dream, scores, report), then a short PPO run
inside the shipped `Dream-League-v0`, scored in `LaneSim-v0`. Rerunning continues the run:
finished stages are skipped, an interrupted PPO run resumes from its checkpoint, and a run counts
as finished once its League scores (`league-ppo/results.json`) are written."""

from __future__ import annotations

import argparse

from experiments.arg_types import positive_int

NAME = "demo"
LEAGUE = "league-ppo"  # the PPO run in Dream-League-v0; its results.json is written last
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
        "runs/<experiment>/<time>/); a new or empty folder, or an earlier run, which resumes",
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
    from experiments.pipeline_report import summary_tables
    from experiments.pipeline_runs import prepare
    from world_models.checkpoint import read_json
    from world_models.runs import has_checkpoints

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config, run_dir = prepare(
        args.config, args.out, new=args.new, finished_when=f"{LEAGUE}/results.json"
    )
    if not execute(config, run_dir):
        return 1
    print(f"\n{summary_tables(run_dir)}\n\nreport: {run_dir / 'report.md'}\n")
    league = run_dir / LEAGUE
    if (league / "results.json").is_file():
        print("PPO in Dream-League-v0: done, skipped (--new starts a fresh run)")
        path, results = league / "ppo.zip", read_json(league / "results.json")
    else:
        resume = has_checkpoints(league)
        print(
            f"PPO for {args.ppo_steps} steps in Dream-League-v0 (the shipped world model)"
            f"{', resuming' if resume else ''}",
            flush=True,
        )
        path = train_sb3(
            "ppo",
            "Dream-League-v0",
            league,
            steps=args.ppo_steps,
            device=config["device"],
            resume=resume,
        )
        results = evaluate_policy(
            load_agent(f"ppo:{path}", "LaneSim-v0"), "LaneSim-v0", args.episodes, out_dir=league
        )
    print(f"PPO agent {path}: {format_results(results)}; videos in {league}")
    return 0
