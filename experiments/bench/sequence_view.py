"""Benchmark: SequenceView batches per second on one CPU core (target: at least 500).

A batch is 32 windows x 16 frames x 64x64x3 uint8 plus actions, rewards and flags. By default
a synthetic dataset of random frames is written to a temporary folder (and removed after);
`--dataset-id` (with `--data-dir`) benchmarks an existing dataset instead.

    python -m experiments.bench.sequence_view
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402


def synthetic_episodes(episodes: int, steps: int, size: int, seed: int = 0) -> Iterator:
    """Episodes of `steps` transitions with random frames and Discrete(7) actions."""
    from minari.data_collector import EpisodeBuffer

    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        yield EpisodeBuffer(
            observations=rng.integers(0, 256, (steps + 1, size, size, 3), dtype=np.uint8),
            actions=rng.integers(0, 7, steps),
            rewards=rng.random(steps),
            terminations=np.arange(steps) == steps - 1,
            truncations=np.zeros(steps, bool),
        )


def bench(view, batch: int, seq_len: int, seconds: float) -> float:
    """Batches per second of `view.sample(batch, seq_len)` over about `seconds` seconds."""
    rng = np.random.default_rng(0)
    for _ in range(20):  # warm-up: page the memory map in
        view.sample(batch, seq_len, rng)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        view.sample(batch, seq_len, rng)
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-id", default=None, help="existing dataset (default: synthetic)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--episodes", type=int, default=80, help="synthetic episodes")
    parser.add_argument("--steps", type=int, default=100, help="transitions per synthetic episode")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass

    from data_collection.datasets import write_dataset
    from data_collection.sequence_view import SequenceView

    with tempfile.TemporaryDirectory(prefix="dreamgym-bench-") as tmp:
        dataset_id, data_dir = args.dataset_id, args.data_dir
        if dataset_id is None:
            dataset_id, data_dir = "bench/synthetic-v0", tmp
            write_dataset(
                dataset_id,
                synthetic_episodes(args.episodes, args.steps, 64),
                observation_space=spaces.Box(0, 255, (64, 64, 3), np.uint8),
                action_space=spaces.Discrete(7),
                data_dir=data_dir,
            )
        start = time.perf_counter()
        view = SequenceView(dataset_id, data_dir)
        print(
            f"view of {view.num_episodes} episodes, {view.num_steps} steps, "
            f"opened in {time.perf_counter() - start:.2f} s (cache built if missing)"
        )
        rate = bench(view, args.batch, args.seq_len, args.seconds)
        shape = (args.batch, args.seq_len, *view.observation_space.shape)
        print(f"{rate:.0f} batches/s of obs {shape} on one core (target >= 500)")


if __name__ == "__main__":
    main()
