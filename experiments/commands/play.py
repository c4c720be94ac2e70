"""`dreamgym play`: record a rollout of a policy in any env, real or dream."""

from __future__ import annotations

import argparse

from experiments.arg_types import positive_int

NAME = "play"
HELP = "Record a rollout (video + returns) of a random or expert policy in any env, real or dream."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("env_id", help="env id, e.g. LaneSim-v0 or Dream-League-v0")
    parser.add_argument(
        "--policy",
        default="random",
        help="random, expert (real envs only: it reads the true state), or ALGO:PATH of a saved "
        "SB3 agent, e.g. ppo:runs/agent.zip",
    )
    parser.add_argument(
        "--steps", type=positive_int, default=200, help="steps to record (default 200)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="play.mp4", help="video path (.mp4 or .gif)")
    parser.add_argument("--fps", type=positive_int, default=10)
    parser.add_argument(
        "--env-kwarg",
        action="append",
        metavar="KEY=VALUE",
        help="keyword for gym.make, e.g. --env-kwarg bundle=path/to/bundle (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym
    from tqdm import tqdm

    import envs  # noqa: F401  (registers the ids)
    from experiments.policy_loading import load_policy
    from experiments.rollout import run_episode
    from experiments.videos import write_video
    from world_models.runs import parse_overrides

    try:
        env = gym.make(
            args.env_id, render_mode="rgb_array", **parse_overrides(args.env_kwarg, "--env-kwarg")
        )
    except TypeError as err:  # a keyword the env does not take, or a value of the wrong type
        raise ValueError(
            f"--env-kwarg: {args.env_id} does not take one of these keywords or values ({err})"
        ) from err
    policy = load_policy(args.policy, args.env_id)
    frames, total, steps, episodes = [], 0.0, 0, 0
    bar = tqdm(total=args.steps, desc=args.env_id, unit="step")
    while steps < args.steps:
        seed, left = args.seed + episodes, args.steps - steps
        episode = run_episode(env, policy, seed, max_steps=left, on_step=bar.update)
        frames.extend(episode.frames)
        total += episode.episode_return
        steps += len(episode.actions)
        episodes += 1
    bar.close()
    env.close()
    path = write_video(frames, args.out, fps=args.fps)
    print(f"{args.env_id}: {steps} steps over {episodes} episode(s), return {total:.3f}")
    print(f"video: {path}")
    return 0
