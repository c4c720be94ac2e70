"""`dreamgym evaluate`: score a policy in a real env over seeded episodes."""

from __future__ import annotations

import argparse

from experiments.arg_types import device, positive_int

NAME = "evaluate"
HELP = "Score a policy in a real env: success rate / return with 95% CI, best and worst videos"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        required=True,
        help="random, expert, noisy, ALGO:PATH (ppo/a2c/dqn .zip) or diffusion:POLICY_DIR",
    )
    parser.add_argument(
        "--env", required=True, help="real env id, e.g. MiniGridPixels-DoorKey-8x8-v0"
    )
    parser.add_argument(
        "--episodes", type=positive_int, default=100, help="number of seeded episodes"
    )
    parser.add_argument("--seed", type=int, default=None, help="episode i uses seed + i")
    parser.add_argument("--max-steps", type=positive_int, help="cut episodes after this many steps")
    parser.add_argument(
        "--execute",
        type=positive_int,
        help="diffusion: actions executed per chunk before replanning",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help="diffusion: sampling temperature of action tokens; SB3 agents: 1 draws actions "
        "from the policy (0, the default: most likely)",
    )
    parser.add_argument(
        "--out", help="folder for results.json and videos (default: runs/evaluate/<time>)"
    )
    parser.add_argument("--device", type=device, default="cpu", help="torch device for the policy")
    parser.add_argument("--threads", type=positive_int, help="CPU threads for torch")


def run(args: argparse.Namespace) -> int:
    import torch

    from agents.evaluation import EVAL_SEED, evaluate_policy, format_results, load_agent
    from world_models.runs import new_run_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.env.split(":")[-1].startswith("Dream"):
        raise ValueError(f"evaluate scores policies in a real env; {args.env} is a dream env")
    if args.temperature < 0:
        raise ValueError(f"--temperature must be >= 0, got {args.temperature}")
    policy = load_agent(args.policy, args.env, args.device, args.execute, args.temperature)
    out = args.out or new_run_dir("runs", "evaluate")
    seed = EVAL_SEED if args.seed is None else args.seed
    results = evaluate_policy(
        policy,
        args.env,
        args.episodes,
        seed,
        out,
        args.max_steps,
        metadata={"policy": args.policy, "temperature": args.temperature},
    )
    print(format_results(results))
    print(f"results and videos: {out}")
    return 0
