"""Diagnostic: how soon does a small dynamics model learn to follow its actions?

A toy world with no pixels: a point on a ring of P cells, each cell a fixed random latent frame
(N tokens of width D); action 0 stays, 1 steps left, 2 steps right. The model trains with its
real loss (`Dynamics.loss`) and every `--eval-every` steps rolls out one frame with K = 4 from
4 context frames under each action; a prediction is right when its nearest cell is the one the
action leads to (chance 1 / P). Every setting uses context_prob 0.5, as the shipped configs
do, and sees the same batches from the same initial weights:

    python -m experiments.bench.action_toy [--steps 1000] [--threads 1]

Output: a table of accuracy (stay / left / right) per setting and step, and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import gymnasium as gym
import torch

from world_models.action_encoder import space_to_spec
from world_models.dynamics import Dynamics, DynamicsConfig

CELLS, TOKENS, WIDTH, FRAMES, CONTEXT = 8, 4, 8, 8, 4
MOVES = torch.tensor([0, -1, 1])  # stay, left, right
SETTINGS: dict[str, dict[str, Any]] = {
    "paper's sampling (ramp weight, flow_share 0)": {},
    "uniform weight": {"ramp_weight": False},
    "flow_share 0.75": {"flow_share": 0.75},
    "uniform weight + flow_share 0.75": {"ramp_weight": False, "flow_share": 0.75},
}


def toy_batch(
    codes: torch.Tensor, batch: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> latents (B, T, N, D), actions (B, T) (action t led to frame t), cells (B, T)."""
    cell = torch.randint(0, CELLS, (batch,), generator=generator)
    action = torch.randint(0, 3, (batch, FRAMES), generator=generator)
    cells = [cell]
    for t in range(1, FRAMES):
        cells.append((cells[-1] + MOVES[action[:, t]]) % CELLS)
    cells_t = torch.stack(cells, 1)
    return codes[cells_t], action, cells_t


def labeled_after_first(batch: int) -> torch.Tensor:
    """(B, T) bool: every action known except at t = 0, which has none."""
    labeled = torch.ones(batch, FRAMES, dtype=torch.bool)
    labeled[:, 0] = False
    return labeled


def follow_accuracy(model: Dynamics, codes: torch.Tensor, generator: torch.Generator) -> list:
    """Share of one-step K = 4 predictions nearest to the right cell, per action."""
    latents, action, cells = toy_batch(codes, 256, generator)
    labeled = labeled_after_first(256)
    model.eval()
    state = model.start(latents[:, :CONTEXT], action[:, :CONTEXT], labeled[:, :CONTEXT], generator)
    accuracy = []
    for a in range(3):
        frame = model.step(state, torch.full((256,), a), generator=generator)[0]
        nearest = (frame[:, None] - codes[None]).pow(2).mean((-2, -1)).argmin(1)
        accuracy.append((nearest == (cells[:, CONTEXT - 1] + MOVES[a]) % CELLS).float().mean())
    model.train()
    return [round(float(x), 3) for x in accuracy]


def run(overrides: dict[str, Any], steps: int, eval_every: int, lr: float) -> dict[int, list]:
    """Train one setting from seed 0; -> {step: [stay, left, right] accuracy}."""
    torch.manual_seed(0)
    data = torch.Generator().manual_seed(0)  # the toy batches: the same for every setting
    noise = torch.Generator().manual_seed(1)  # the loss's noise levels and noise
    codes = torch.randn(CELLS, TOKENS, WIDTH, generator=data).clamp(-1, 1) * 0.8
    config = DynamicsConfig(
        action_spec=space_to_spec(gym.spaces.Discrete(3)),
        num_latents=TOKENS,
        latent_dim=WIDTH,
        dim=64,
        depth=4,
        num_heads=4,
        num_kv_heads=2,
        time_attention_every=1,
        context_prob=0.5,
        context_length=FRAMES,
        **overrides,
    )
    model = Dynamics(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr)
    labeled = labeled_after_first(16)
    zeros = torch.zeros(16, FRAMES)
    results = {}
    for step in range(1, steps + 1):
        latents, action, _ = toy_batch(codes, 16, data)
        loss, _ = model.loss(latents, action, labeled, zeros, zeros.bool(), noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % eval_every == 0:
            results[step] = follow_accuracy(model, codes, torch.Generator().manual_seed(1))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"accuracy (stay / left / right) of one-step K=4 predictions; chance {1 / CELLS:.3f}")
    report = {}
    for name, overrides in SETTINGS.items():
        start = time.perf_counter()
        report[name] = run(overrides, args.steps, args.eval_every, args.lr)
        cells = "  ".join(
            f"@{s}: {'/'.join(f'{a:.2f}' for a in acc)}" for s, acc in report[name].items()
        )
        print(f"{name:46s} {cells}  ({time.perf_counter() - start:.0f} s)", flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
