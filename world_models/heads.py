"""Prediction heads on the dynamics model's agent tokens: reward (symlog two-hot) and continue.

Reward: logits over `num_bins` bins spaced evenly in symlog space on [low, high]; the target is
the two-hot encoding of symlog(reward); the prediction is symexp of the expected bin value.
Continue: one Bernoulli logit, target 1 - is_terminal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from world_models.layers import RMSNorm


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) * log(1 + |x|)."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    """Inverse of symlog: sign(x) * (exp(|x|) - 1)."""
    return torch.sign(x) * torch.expm1(x.abs())


class TwoHot(nn.Module):
    """Two-hot encoding over bins evenly spaced in symlog space."""

    def __init__(self, num_bins: int = 255, low: float = -20.0, high: float = 20.0) -> None:
        super().__init__()
        if num_bins < 2 or not low < high:
            raise ValueError(f"need num_bins >= 2 and low < high, got {num_bins}, {low}, {high}")
        self.register_buffer("bins", torch.linspace(low, high, num_bins), persistent=False)

    def encode(self, value: torch.Tensor) -> torch.Tensor:
        """value (...) -> two-hot target (..., num_bins) of symlog(value), clipped to the range."""
        bins = self.bins
        x = symlog(value.float()).clamp(bins[0], bins[-1])
        upper = torch.searchsorted(bins, x.contiguous(), right=True).clamp(1, len(bins) - 1)
        lower = upper - 1
        w_upper = (x - bins[lower]) / (bins[upper] - bins[lower])
        target = torch.zeros(*x.shape, len(bins), device=x.device)
        target.scatter_(-1, lower.unsqueeze(-1), (1 - w_upper).unsqueeze(-1))
        target.scatter_add_(-1, upper.unsqueeze(-1), w_upper.unsqueeze(-1))
        return target

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (..., num_bins) -> symexp(expected bin value) (...), in float32 (an
        elementwise sum: under autocast a matmul would run in bf16, about 1% off)."""
        return symexp((logits.float().softmax(-1) * self.bins).sum(-1))

    def loss(self, logits: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of logits (..., num_bins) against the two-hot target of value (...)."""
        return -(self.encode(value) * F.log_softmax(logits.float(), -1)).sum(-1)


class MLPHead(nn.Module):
    """RMSNorm -> Linear -> SiLU -> Linear; the output layer starts at zero."""

    def __init__(self, dim: int, out_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden = hidden_dim or dim
        self.net = nn.Sequential(
            RMSNorm(dim), nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, out_dim)
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class RewardHead(nn.Module):
    """Agent token (..., dim) -> reward logits (..., num_bins); `predict` gives the reward."""

    def __init__(self, dim: int, num_bins: int = 255, low: float = -20.0, high: float = 20.0):
        super().__init__()
        self.mlp = MLPHead(dim, num_bins)
        self.two_hot = TwoHot(num_bins, low, high)

    def forward(self, agent: torch.Tensor) -> torch.Tensor:
        return self.mlp(agent)

    def loss(self, logits: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
        return self.two_hot.loss(logits, reward)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        return self.two_hot.decode(logits)


class ContinueHead(nn.Module):
    """Agent token (..., dim) -> continue logit (...); target is 1 - is_terminal."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = MLPHead(dim, 1)

    def forward(self, agent: torch.Tensor) -> torch.Tensor:
        return self.mlp(agent).squeeze(-1)

    def loss(self, logit: torch.Tensor, is_terminal: torch.Tensor) -> torch.Tensor:
        target = 1.0 - is_terminal.float()
        return F.binary_cross_entropy_with_logits(logit.float(), target, reduction="none")
