"""A world model: a frozen tokenizer plus an action-conditioned dynamics model.

`WorldModel.start` reads real context frames into the dynamics' KV cache and `WorldModel.step`
imagines one frame per action; `imagine` runs a whole open-loop rollout. The dream env,
evaluation and the trainers' dream videos all go through this one sampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from world_models.tokenizer import Tokenizer


@dataclass
class Imagined:
    """One imagined step for a batch: frames (B, H, W, C) in [0, 1], reward (B,), continue (B,)."""

    frame: torch.Tensor
    reward: torch.Tensor
    cont: torch.Tensor


class WorldModel(nn.Module):
    """Tokenizer + dynamics, used for inference only."""

    def __init__(self, tokenizer: Tokenizer, dynamics: nn.Module, num_steps: int = 4) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.dynamics = dynamics
        self.num_steps = num_steps
        self.state: Any = None

    @torch.no_grad()
    def start(self, obs: torch.Tensor, action: torch.Tensor, labeled: torch.Tensor) -> None:
        """Fill the cache from real context: obs (B, T0, H, W, C) uint8, action (B, T0, ...),
        labeled (B, T0) bool (see the dataset alignment in data_collection.sequence_view)."""
        latents = self.tokenizer.encode(obs)  # (B, T0, N, D)
        self.state = self.dynamics.start(latents, action, labeled)

    @torch.no_grad()
    def step(self, action: torch.Tensor, generator: torch.Generator | None = None) -> Imagined:
        """Imagine the frame that `action` (B, ...) leads to, with its reward and continue."""
        if self.state is None:
            raise RuntimeError("call start() with real context before step()")
        latents, reward, cont, self.state = self.dynamics.step(
            self.state, action, num_steps=self.num_steps, generator=generator
        )
        frame = self.tokenizer.decode(latents[:, None])[:, 0]  # (B, H, W, C)
        return Imagined(frame=frame.clamp(0, 1), reward=reward, cont=cont)

    @torch.no_grad()
    def imagine(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        labeled: torch.Tensor,
        context: int,
        generator: torch.Generator | None = None,
    ) -> Imagined:
        """Open-loop rollout: the first `context` steps of a real window are given, the rest are
        imagined from its actions. Returns (B, T - context, ...) frames, rewards and continues."""
        self.start(obs[:, :context], action[:, :context], labeled[:, :context])
        steps = [self.step(action[:, t], generator) for t in range(context, obs.shape[1])]
        return Imagined(
            frame=torch.stack([s.frame for s in steps], 1),
            reward=torch.stack([s.reward for s in steps], 1),
            cont=torch.stack([s.cont for s in steps], 1),
        )
