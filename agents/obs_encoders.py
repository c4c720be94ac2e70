"""Observation encoders for policies: observations -> a set of tokens (B, N, dim).

- `PixelEncoder`: uint8 images (B, H, W, C) centred on a mean frame, one token per 8x8 tile
  (patchify convolution), with a learned position embedding.
- `SymbolicGridEncoder`: MiniGrid's symbolic grid (B, W, H, 3) of (object, color, state)
  indices, one token per cell (the three embeddings summed, plus a position embedding), and
  one token for the agent's direction.

An encoder is chosen from a JSON-able observation spec (`obs_spec`), so a saved policy can
rebuild it: {"type": "pixels", "shape": [H, W, C]} or {"type": "symbolic", "width": W,
"height": H}.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn

SYMBOLIC_VOCAB = 256  # grid entries are uint8


def obs_spec(space: gym.Space) -> dict[str, Any]:
    """The JSON-able spec of an observation space a policy can read."""
    if isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3:
        return {"type": "pixels", "shape": list(space.shape)}
    if isinstance(space, spaces.Dict) and set(space.spaces) == {"grid", "direction"}:
        width, height, _ = space["grid"].shape
        return {"type": "symbolic", "width": int(width), "height": int(height)}
    raise ValueError(
        "policies read uint8 images Box(0, 255, (H, W, C)) or MiniGrid symbolic observations "
        f"Dict(grid, direction); got {space}"
    )


def check_obs_space(spec: dict[str, Any], space: gym.Space, where: str) -> None:
    """Raise a clear error unless a policy trained on observations `spec` can read `space`."""
    try:
        theirs = obs_spec(space)
    except ValueError:
        theirs = None
    if theirs != spec:
        raise ValueError(
            f"this policy reads {spec} observations but {where} observes {space}; use an env "
            "with the observations it was trained on (e.g. MiniGridSymbolic-* for a policy "
            "trained on a symbolic dataset)"
        )


class PixelEncoder(nn.Module):
    """(B, H, W, C) uint8 -> (B, (H/8) * (W/8), dim): a patchify convolution (kernel = stride =
    8, so each 8x8 tile, one MiniGrid cell at 64x64, is one token) and a per-token MLP, plus a
    learned position embedding. Inputs are centred on the mean training frame (`set_mean`), so
    the few tiles that differ between states (the agent, a key, a door) dominate the tokens
    instead of the static walls and floor."""

    def __init__(self, shape: tuple[int, int, int], dim: int) -> None:
        super().__init__()
        height, width, in_ch = shape
        if height % 8 or width % 8:
            raise ValueError(f"image sides must be multiples of 8, got {height}x{width}")
        self.embed = nn.Sequential(
            nn.Conv2d(in_ch, 2 * dim, 8, 8), nn.GELU(), nn.Conv2d(2 * dim, dim, 1)
        )
        self.pos = nn.Parameter(torch.zeros(1, (height // 8) * (width // 8), dim))
        nn.init.normal_(self.pos, std=0.02)
        # the mean training frame (set by `set_mean`); 127.5 until then
        self.register_buffer("mean", torch.full((in_ch, height, width), 127.5))

    @torch.no_grad()
    def set_mean(self, frame: np.ndarray) -> None:
        """Centre inputs on a mean frame (H, W, C): the static background of a MiniGrid level
        then reads as zero and only what changes between states is left."""
        self.mean.copy_(torch.as_tensor(np.asarray(frame, np.float32)).permute(2, 0, 1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = (obs.permute(0, 3, 1, 2).float() - self.mean) / 127.5  # (B, C, H, W), centred
        x = self.embed(x).flatten(2).transpose(1, 2)  # (B, H/8 * W/8, dim)
        return x + self.pos


class SymbolicGridEncoder(nn.Module):
    """{"grid": (B, W, H, 3) ints, "direction": (B,)} -> (B, W * H + 1, dim)."""

    def __init__(self, width: int, height: int, dim: int) -> None:
        super().__init__()
        self.fields = nn.ModuleList(nn.Embedding(SYMBOLIC_VOCAB, dim) for _ in range(3))
        self.direction = nn.Embedding(4, dim)
        self.pos = nn.Parameter(torch.zeros(1, width * height + 1, dim))
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        grid = obs["grid"].long().flatten(1, 2)  # (B, W * H, 3)
        cells = sum(emb(grid[..., i]) for i, emb in enumerate(self.fields))
        direction = self.direction(obs["direction"].long().reshape(-1, 1))  # (B, 1, dim)
        return torch.cat([cells, direction], dim=1) + self.pos


def make_encoder(spec: dict[str, Any], dim: int) -> nn.Module:
    """The encoder for an observation spec from `obs_spec`."""
    if spec["type"] == "pixels":
        return PixelEncoder(tuple(spec["shape"]), dim)
    if spec["type"] == "symbolic":
        return SymbolicGridEncoder(spec["width"], spec["height"], dim)
    raise ValueError(f"unknown observation spec type {spec['type']!r}; use pixels or symbolic")


def obs_to_tensor(obs: Any, device: torch.device | str = "cpu") -> Any:
    """A batch of observations (array, or dict of arrays) as tensors on `device`."""
    if isinstance(obs, dict):
        return {k: torch.as_tensor(np.asarray(v), device=device) for k, v in obs.items()}
    return torch.as_tensor(np.asarray(obs), device=device)
