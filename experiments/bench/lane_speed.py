"""Benchmark: LaneSim-v0 steps per second with rendering, and expert vs random gold.

Speed (target: at least 2,000 steps/s at 64x64 on one core) counts env.step, rendering
included, and the policy's act; the process is pinned to one core where the OS allows it.
Steps per CPU second are printed beside wall-clock steps/s: on a shared machine they tell the
single-core throughput while other processes take turns on the same core.

    python -m experiments.bench.lane_speed                 # steps/s, random and expert
    python -m experiments.bench.lane_speed --gold          # mean gold over 20 seeds
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from data_collection.policies import Policy, make_policy  # noqa: E402
from envs.lane import LaneSimEnv  # noqa: E402


def run_episode(env: LaneSimEnv, policy: Policy, seed: int) -> tuple[dict, int]:
    """One episode; returns the final info and the number of steps taken."""
    obs, info = env.reset(seed=seed)
    policy.reset(env, seed)
    steps, truncated = 0, False
    while not truncated:
        obs, _, _, truncated, info = env.step(policy.act(obs))
        steps += 1
    return info, steps


def speed(kind: str, image_size: int, steps: int) -> tuple[float, float]:
    """Steps per wall-clock second and per CPU second of `kind` policy, rendering included."""
    env = LaneSimEnv(render_mode="rgb_array", image_size=image_size, episode_length=steps)
    policy = make_policy(kind, "LaneSim-v0")
    run_episode(env, policy, seed=0)  # warm-up (sprite and background caches)
    wall, cpu = time.perf_counter(), time.process_time()
    _, n = run_episode(env, policy, seed=1)
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def gold(kind: str, seeds: int, episode_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Final gold and deaths of `kind` policy for seeds 0 .. seeds-1."""
    env = LaneSimEnv(episode_length=episode_length)
    policy = make_policy(kind, "LaneSim-v0")
    infos = [run_episode(env, policy, seed)[0] for seed in range(seeds)]
    return np.array([i["gold"] for i in infos]), np.array([i["deaths"] for i in infos])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gold", action="store_true", help="report gold instead of speed")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--episode-length", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=5000, help="steps per speed measurement")
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    for kind in ("random", "expert"):
        if args.gold:
            g, deaths = gold(kind, args.seeds, args.episode_length)
            print(
                f"{kind:>6}: gold {g.mean():7.1f} +- {g.std():5.1f} "
                f"(min {g.min()}, max {g.max()}), "
                f"deaths {deaths.mean():.2f}  [{args.seeds} seeds x {args.episode_length} steps]"
            )
        else:
            wall, cpu = speed(kind, args.image_size, args.steps)
            print(
                f"{kind:>6}: {wall:6.0f} steps/s wall clock, {cpu:6.0f} steps per CPU second "
                f"at {args.image_size}x{args.image_size}"
            )


if __name__ == "__main__":
    main()
