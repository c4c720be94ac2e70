"""`dreamgym train-policy`: a diffusion policy (BC, then imagination) or an SB3 baseline."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from experiments.arg_types import device, nonnegative_int, positive_int
from experiments.train_args import add_train_arguments, train_config_from_args
from world_models.trainer import TrainConfig

NAME = "train-policy"
HELP = "Train a policy: diffusion (BC on a dataset, or improved in a dream env) or SB3 PPO/A2C/DQN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algo", required=True, choices=("diffusion", "ppo", "a2c", "dqn"))
    parser.add_argument(
        "--env",
        required=True,
        help="env id to train in: a real id, or a dream id (Dream-...) to train in imagination",
    )
    parser.add_argument(
        "--dataset", help="diffusion: Minari dataset id of expert episodes for behaviour cloning"
    )
    parser.add_argument(
        "--init", help="diffusion in a dream env: folder of the BC policy to improve (the anchor)"
    )
    parser.add_argument("--bundle", help="world-model bundle folder for a dream env")
    parser.add_argument(
        "--num-envs", type=positive_int, help="parallel envs (default: from the config)"
    )
    parser.add_argument("--eval-env", help="real env id scored every --eval-every steps")
    parser.add_argument(
        "--eval-every", type=nonnegative_int, default=0, help="steps between real evals (0: off)"
    )
    parser.add_argument(
        "--eval-episodes", type=positive_int, default=10, help="episodes per real eval"
    )
    parser.add_argument(
        "--device",
        type=device,
        default="cpu",
        help="torch device (cpu, cuda) for SB3 and imagination; BC uses CUDA when there is one",
    )
    add_train_arguments(parser, experiment="policy")
    parser.epilog = (
        "--steps and --ckpt-every count gradient steps for behaviour cloning (default 2000), "
        "iterations for imagination (default 100; a checkpoint every 25) and env steps for SB3 "
        "(default: the env's budget in experiments/configs/agents.json; a checkpoint at the "
        "first rollout end after every 10,000). The other optimisation options apply to "
        "behaviour cloning only: imagination and SB3 take their settings with --set."
    )


# options each kind of training does not take (a value other than None or 0 is refused)
NOT_TAKEN = {
    "behaviour cloning": ("init", "bundle", "num_envs", "eval_env", "eval_every"),
    "imagination": ("dataset",),
    "SB3": ("dataset", "init"),
}


def run(args: argparse.Namespace) -> int:
    _refuse_options_not_taken(args)  # before a run folder is made
    run_dir, train, overrides = train_config_from_args(args)
    if args.algo == "diffusion":
        if args.dataset:
            from agents.bc import train_bc

            _, folder = train_bc(
                args.dataset,
                run_dir,
                train,
                args.data_dir,
                overrides,
                resume=args.resume,
                env_id=args.env,
            )
        elif args.init:
            from agents.imagination import improve_in_dream

            folder = improve_in_dream(
                args.init,
                args.env,
                run_dir,
                steps=100 if args.steps is None else args.steps,
                seed=train.seed,
                ckpt_every=args.ckpt_every or 25,
                **_env_settings(args, overrides),
            )
        else:
            raise ValueError(
                "--algo diffusion needs --dataset (behaviour cloning) or --init POLICY_DIR "
                "(improvement in the dream env --env)"
            )
        print(f"diffusion policy: {folder}  (evaluate with --policy diffusion:{folder})")
        return 0
    from agents.baselines import train_sb3

    path = train_sb3(
        args.algo,
        args.env,
        run_dir,
        steps=args.steps,
        seed=train.seed,
        ckpt_every=args.ckpt_every or 10_000,
        **_env_settings(args, overrides),
    )
    print(f"{args.algo} agent: {path}  (evaluate with --policy {args.algo}:{path})")
    return 0


def _env_settings(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """The settings both trainers in an env take: env, evaluation, device, overrides, resume."""
    return {
        "bundle": args.bundle,
        "num_envs": args.num_envs,
        "eval_env": args.eval_env,
        "eval_every": args.eval_every,
        "eval_episodes": args.eval_episodes,
        "device": args.device,
        "overrides": overrides,
        "resume": args.resume,
    }


def _refuse_options_not_taken(args: argparse.Namespace) -> None:
    """A clear error for options this kind of training would ignore."""
    if args.algo != "diffusion":
        kind = "SB3"
    else:
        kind = "behaviour cloning" if args.dataset else "imagination"
    unused = [name for name in NOT_TAKEN[kind] if getattr(args, name) not in (None, 0)]
    if unused:
        raise ValueError(f"{_flags(unused)}: not used by {kind} (--algo {args.algo})")
    if kind == "behaviour cloning":
        return
    if args.steps == 0:
        raise ValueError(f"--steps must be >= 1 for {kind}")
    given = {f.name for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    bc_only = sorted(given - {"steps", "seed", "ckpt_every"})
    if bc_only:
        raise ValueError(
            f"{_flags(bc_only)}: behaviour-cloning options; imagination and SB3 take their "
            "settings with --set KEY=VALUE (e.g. --set lr=1e-5, --set learning_rate=1e-4)"
        )


def _flags(names: list[str]) -> str:
    return ", ".join("--" + name.replace("_", "-") for name in names)
