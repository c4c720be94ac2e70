"""Benchmark: steps per second of the dream env (1 env, and N batched) beside the real env.

Targets (issue 5): one dream env >= 50 steps/s on 2 CPU cores; batched (64 and 1,024 envs) on
one GPU >= 10,000 steps/s at 64x64. Runs on CPU, and on GPU too when CUDA is available.
Without `--bundle`, a bundle with random weights and the full-size default models (CNN
tokenizer, `DynamicsConfig()` defaults) at LaneSim-v0's spaces is built in a temporary folder:
speed does not depend on the weights, but a trained bundle may use other model sizes.

    python -m experiments.bench.dream_speed [--bundle PATH] [--seconds 3] [--threads 2]
        [--eager] [--compile]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from itertools import product
from pathlib import Path
from typing import Any


def rate(step: Callable[[], None], seconds: float, warmup: int = 1) -> float:
    """Calls per second of `step` over about `seconds` seconds, after `warmup` calls."""
    for _ in range(warmup):
        step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - start)


def real_env_rate(env_id: str, seconds: float) -> float:
    import gymnasium as gym

    import envs  # noqa: F401  (registers the ids)

    env = gym.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)

    def step() -> None:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()

    return rate(step, seconds)


def dream_rate(
    bundle: Path,
    device: str,
    num_envs: int,
    obs_mode: str,
    seconds: float,
    threshold: float,
    k: int | None,
    run: str = "traced",
) -> float:
    """Env steps per second: one `DreamEnv` (num_envs = 0) or a `DreamVectorEnv`, its
    dynamics run "traced" (the default), "eager" or "compiled". Compiled, the first 50 steps
    (the KV cache filling its window, each new shape compiled) are not timed."""
    from envs.dream import DreamEnv
    from envs.dream_vector import DreamVectorEnv

    compile = run == "compiled"
    kwargs = dict(device=device, obs_mode=obs_mode, continue_threshold=threshold, num_steps=k)
    kwargs.update(compile=compile, trace=run == "traced")
    warmup = 50 if compile else 1
    if num_envs == 0:
        env = DreamEnv(bundle, **kwargs)
        env.reset(seed=0)
        env.action_space.seed(0)

        def step() -> None:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()

        return rate(step, seconds, warmup)
    venv = DreamVectorEnv(num_envs, bundle=bundle, **kwargs)
    venv.reset(seed=0)
    venv.action_space.seed(0)
    return num_envs * rate(lambda: venv.step(venv.action_space.sample()), seconds, warmup)


def build_random_bundle(folder: Path, dynamics: dict[str, Any]) -> Path:
    """Random weights, LaneSim-v0's spaces, the default CNN tokenizer and the default dynamics
    model with `dynamics` overrides; start contexts of 32 frames fill the KV cache window."""
    import numpy as np
    from gymnasium import spaces

    from world_models.random_bundle import random_bundle

    obs = spaces.Box(0, 255, (64, 64, 3), np.uint8)
    actions = spaces.MultiDiscrete([21, 21, 2, 2, 2, 2, 2])
    return random_bundle(folder / "bundle", obs, actions, dynamics=dynamics, context_length=32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="bundle folder (default: random weights)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--num-envs", type=int, nargs="+", help="batch sizes (CPU: 64; GPU: 64 1024)"
    )
    parser.add_argument("--num-steps", type=int, help="shortcut steps K (default: bundle's)")
    parser.add_argument("--real-env", default="LaneSim-v0", help="real env id to compare with")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time the dream envs with compile=True (each row first compiles: minutes)",
    )
    parser.add_argument(
        "--eager",
        action="store_true",
        help="also time the dream envs with trace=False (the dynamics run eagerly)",
    )
    parser.add_argument(
        "--dynamics",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="DynamicsConfig overrides for the random bundle, e.g. dim=128 depth=4",
    )
    args = parser.parse_args()

    import torch

    from envs.dream import dream_world_model
    from world_models.bundle import load_bundle

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        bundle, threshold = args.bundle, 0.5
        if bundle is None:
            threshold = 0.0  # a random continue head would end about every other step
            overrides = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.dynamics)}
            bundle = build_random_bundle(Path(tmp), overrides)
            print(
                "bundle: RANDOM weights (no --bundle given), built in a temp dir; dynamics "
                f"overrides: {overrides or 'none (DynamicsConfig defaults)'}; terminations off, "
                "episodes end at the horizon"
            )
        else:
            print(f"bundle: {bundle}")
        loaded = load_bundle(bundle)
        for name, model in loaded.models.items():
            params = sum(p.numel() for p in model.parameters())
            print(f"  {name}: {params / 1e6:.2f}M parameters")
        k = dream_world_model(loaded, args.num_steps).num_steps
        print(
            f"K = {k} sampling steps per frame; torch {torch.__version__}, "
            f"{args.threads} CPU threads\n"
        )
        print(f"{'env':<28} {'device':<7} {'envs':>5} {'steps/s':>10}")
        real = real_env_rate(args.real_env, args.seconds)
        print(f"{args.real_env + ' (real)':<28} {'cpu':<7} {1:>5} {real:>10.1f}")
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            batches = args.num_envs or ([64] if device == "cpu" else [64, 1024])
            runs = ["traced"] + ["eager"] * args.eager + ["compiled"] * args.compile
            for run, mode, n in product(runs, ("pixels", "latents"), [0, *batches]):
                steps = dream_rate(
                    bundle, device, n, mode, args.seconds, threshold, args.num_steps, run
                )
                label = f"dream ({mode})" + (" vector" if n else "")
                label += "" if run == "traced" else f", {run}"
                print(f"{label:<28} {device:<7} {max(n, 1):>5} {steps:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
