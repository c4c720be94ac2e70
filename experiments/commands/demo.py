"""`dreamgym demo`: the main job (grows with the project; see README)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

NAME = "demo"
HELP = "Collect a small expert dataset for each real env and write videos of expert play."

REAL_ENVS = ("MiniGridPixels-DoorKey-8x8-v0", "MovingMNIST-v0", "LaneSim-v0")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output root (default: runs/demo)")
    parser.add_argument("--episodes", type=int, default=20, help="expert episodes per env")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import envs  # noqa: F401  (registers the ids)
    from data_collection.policies import make_policy
    from data_collection.recording import collect
    from experiments.rollout import run_episode
    from experiments.videos import write_video

    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for env_id in REAL_ENVS:
        name = env_id.split("-v")[0].lower()
        path = collect(
            env_id,
            "expert",
            args.episodes,
            f"dreamgym/{name}-expert-v0",
            data_dir=out / "datasets",
            seed=args.seed,
        )
        env = gym.make(env_id, render_mode="rgb_array")
        episode = run_episode(env, make_policy("expert", env_id), seed=args.seed, max_steps=300)
        env.close()
        for suffix in (".mp4", ".gif"):
            write_video(episode.frames, out / "videos" / f"{name}-expert{suffix}", fps=10)
        rows.append((env_id, len(episode.actions), episode.episode_return, path))
    print(f"\n{'env':32} {'steps':>6} {'return':>8}  dataset")
    for env_id, steps, ret, path in rows:
        print(f"{env_id:32} {steps:6d} {ret:8.2f}  {path}")
    print(f"\nvideos: {out / 'videos'}")
    return 0
