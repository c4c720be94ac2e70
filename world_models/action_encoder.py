"""Action spaces as JSON specs, and an action encoder for any Discrete, MultiDiscrete or Box space.

A spec is a plain dict that survives `json.dumps` (it is stored in bundle configs):

    {"type": "Discrete", "n": 7, "start": 0}
    {"type": "MultiDiscrete", "nvec": [21, 21, 2, 2, 2, 2, 2], "start": [0, ...]}
    {"type": "Box", "low": [...], "high": [...], "shape": [2]}   # low/high flattened

`ActionEncoder(spec, dim)` maps actions with leading batch dims (...) to (..., dim) embeddings:
Discrete / MultiDiscrete dimensions through learned embeddings (summed over dimensions), a Box
through a linear layer after clipping to its bounds and scaling to [-1, 1] (dimensions with an
infinite bound are passed through unscaled). Where `labeled` is False the action is ignored and
a learned no-action embedding is used instead (unlabeled video, the first step of an episode).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

SPACE_TYPES = ("Discrete", "MultiDiscrete", "Box")


def space_to_spec(space: gym.Space) -> dict[str, Any]:
    """Gymnasium space -> JSON-serialisable spec dict."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        if space.nvec.ndim != 1:
            raise ValueError(f"only 1-D MultiDiscrete spaces are supported, got nvec {space.nvec}")
        return {
            "type": "MultiDiscrete",
            "nvec": [int(n) for n in space.nvec],
            "start": [int(s) for s in space.start],
        }
    if isinstance(space, gym.spaces.Box):

        def bound(values: np.ndarray) -> float | list[float]:
            flat = [float(x) for x in values.ravel()]
            return flat[0] if len(set(flat)) == 1 else flat  # uniform bounds as one number

        return {
            "type": "Box",
            "low": bound(space.low),
            "high": bound(space.high),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    raise ValueError(
        f"unsupported action space {space!r}: use Discrete, MultiDiscrete or Box "
        "(wrap other spaces, e.g. flatten a Dict space, before training a world model)"
    )


def spec_to_space(spec: dict[str, Any]) -> gym.Space:
    """Spec dict -> Gymnasium space (the inverse of `space_to_spec`)."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "Discrete":
        return gym.spaces.Discrete(int(spec["n"]), start=int(spec.get("start", 0)))
    if kind == "MultiDiscrete":
        nvec = np.asarray(spec["nvec"], dtype=np.int64)
        return gym.spaces.MultiDiscrete(nvec, start=np.asarray(spec.get("start", [0] * len(nvec))))
    if kind == "Box":
        shape = spec["shape"]
        if not isinstance(shape, list | tuple) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
        ):
            raise ValueError(f"bad space spec {spec!r}: 'shape' must be a list of whole numbers")
        shape = tuple(shape)
        dtype = np.dtype(spec.get("dtype", "float32"))
        low = np.broadcast_to(np.asarray(spec["low"], dtype=dtype), shape)
        high = np.broadcast_to(np.asarray(spec["high"], dtype=dtype), shape)
        return gym.spaces.Box(low, high, shape, dtype=dtype)
    raise ValueError(f"bad action spec {spec!r}: 'type' must be one of {SPACE_TYPES}")


class ActionEncoder(nn.Module):
    """Embeds actions of one space into `dim`-wide vectors, with a learned no-action embedding."""

    def __init__(self, spec: dict[str, Any], dim: int) -> None:
        super().__init__()
        self.spec = spec
        self.space = spec_to_space(spec)
        self.kind = spec["type"]
        self.no_action = nn.Parameter(torch.randn(dim) * 0.02)
        if self.kind == "Box":
            self.action_shape: tuple[int, ...] = tuple(self.space.shape)
            low = torch.as_tensor(self.space.low, dtype=torch.float32).flatten()
            high = torch.as_tensor(self.space.high, dtype=torch.float32).flatten()
            finite = torch.isfinite(low) & torch.isfinite(high)
            self.register_buffer("low", torch.where(finite, low, torch.zeros_like(low)))
            self.register_buffer("high", torch.where(finite, high, torch.zeros_like(high)))
            self.register_buffer("finite", finite)
            self.linear = nn.Linear(low.numel(), dim)
        else:
            if self.kind == "Discrete":
                self.action_shape = ()
                nvec, start = [int(self.space.n)], [int(self.space.start)]
            else:
                self.action_shape = (len(self.space.nvec),)
                nvec, start = list(map(int, self.space.nvec)), list(map(int, self.space.start))
            self.register_buffer("nvec", torch.tensor(nvec))
            self.register_buffer("start", torch.tensor(start))
            self.register_buffer("offsets", torch.tensor([0, *np.cumsum(nvec)[:-1].tolist()]))
            self.embed = nn.Embedding(int(sum(nvec)), dim)
            nn.init.normal_(self.embed.weight, std=0.02)

    def null_action(self, *batch_shape: int, device: torch.device | None = None) -> torch.Tensor:
        """A placeholder action tensor (zeros, or the low bound) of shape (*batch_shape, ...)."""
        if self.kind == "Box":
            fill = torch.as_tensor(self.space.low, device=device).clamp(-1e9, 1e9)
            return fill.float().expand(*batch_shape, *self.action_shape).clone()
        start = self.start if self.kind == "MultiDiscrete" else self.start[0]
        return start.to(device).expand(*batch_shape, *self.action_shape).clone()

    def forward(self, action: torch.Tensor, labeled: torch.Tensor | None = None) -> torch.Tensor:
        """action (*batch, *action_shape), labeled (*batch) bool or None (all labeled)
        -> (*batch, dim). Values of unlabeled entries are ignored (any placeholder works)."""
        action = torch.as_tensor(action, device=self.no_action.device)
        nd = len(self.action_shape)
        if nd and tuple(action.shape[-nd:]) != self.action_shape:
            raise ValueError(
                f"{self.kind} actions must end in shape {self.action_shape}, "
                f"got {tuple(action.shape)}"
            )
        batch = action.shape[: action.ndim - nd]
        if labeled is None:
            labeled = torch.ones(batch, dtype=torch.bool, device=action.device)
        labeled = torch.as_tensor(labeled, dtype=torch.bool, device=action.device)
        if labeled.shape != batch:
            raise ValueError(
                f"labeled has shape {tuple(labeled.shape)} but actions {tuple(action.shape)} "
                f"imply batch shape {tuple(batch)}"
            )
        emb = (
            self._embed_box(action, labeled)
            if self.kind == "Box"
            else self._embed_ints(action, labeled)
        )
        return torch.where(labeled.unsqueeze(-1), emb, self.no_action.to(emb.dtype))

    def _embed_box(self, action: torch.Tensor, labeled: torch.Tensor) -> torch.Tensor:
        a = action.float().flatten(labeled.ndim)  # (*batch, F)
        a = torch.where(labeled.unsqueeze(-1), a, torch.zeros_like(a))
        if not torch.isfinite(a).all():
            raise ValueError("Box actions contain NaN or inf where labeled is True")
        scaled = (
            2 * (a.clamp(self.low, self.high) - self.low) / (self.high - self.low).clamp_min(1e-12)
            - 1
        )
        return self.linear(torch.where(self.finite, scaled, a))

    def _embed_ints(self, action: torch.Tensor, labeled: torch.Tensor) -> torch.Tensor:
        if action.is_floating_point():
            where = labeled if self.kind == "Discrete" else labeled.unsqueeze(-1)
            if not ((action == action.round()) | ~where).all():
                raise ValueError(f"{self.kind} actions must be integers, got {action}")
            action = torch.where(where, action, torch.zeros_like(action))
        a = action.long()
        if self.kind == "Discrete":
            a = a.unsqueeze(-1)
        idx = a - self.start
        bad = ((idx < 0) | (idx >= self.nvec)) & labeled.unsqueeze(-1)
        if bad.any():
            raise ValueError(
                f"{self.kind} action out of range: values {a[bad].tolist()[:5]} outside "
                f"[start, start + n) with start={self.start.tolist()} n={self.nvec.tolist()}"
            )
        idx = torch.where(labeled.unsqueeze(-1), idx, torch.zeros_like(idx)) + self.offsets
        return self.embed(idx).sum(-2)
