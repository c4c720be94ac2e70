"""TorchScript traces of the dynamics transformer's one-frame inference passes.

At batch 1 a dream step is five small passes of the space-time transformer (K = 4 shortcut
sub-steps and the cache write) whose cost is mostly per-op overhead: about 600 aten ops a pass,
each a few microseconds, and the Python between them. A trace replays the same ops from C++
with no Python in between, so it returns exactly what the eager pass returns, in about two
thirds of the time on CPU (README, Speed). No compiler is needed, unlike `torch.compile`.

One trace per signature (batch size, frames, whether a time mask and a cache write are given,
device, dtype), each made on its first call from that call's inputs (about 0.1 s). Cache
lengths vary freely within a trace. Traces share the network's parameters, so in-place weight
updates reach them. `torch.jit.trace` is deprecated in favour of `torch.compile`; where it is
missing, the eager network runs instead.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from world_models.dynamics_transformer import SpaceTimeTransformer
from world_models.layers import KV


class _FramePass(nn.Module):
    """`SpaceTimeTransformer.forward` with a cache and tuple inputs and outputs (traceable)."""

    def __init__(self, net: SpaceTimeTransformer, return_kv: bool) -> None:
        super().__init__()
        self.net = net
        self.return_kv = return_kv

    def forward(
        self,
        z: torch.Tensor,
        tau: torch.Tensor,
        d: torch.Tensor,
        action_emb: torch.Tensor,
        positions: torch.Tensor,
        past: tuple[KV, ...],
        time_mask: torch.Tensor | None = None,
    ) -> tuple[Any, ...]:
        x_hat, agent, kv = self.net(
            z, tau, d, action_emb, positions, time_mask, list(past), self.return_kv
        )
        return (x_hat, agent, tuple(kv)) if self.return_kv else (x_hat, agent)


class TracedPasses:
    """Calls like `SpaceTimeTransformer.forward` for passes that read a KV cache, through
    traces made on first use; other calls (no cache) run the network eagerly."""

    def __init__(self, net: SpaceTimeTransformer) -> None:
        self.net = net
        self._traces: dict[tuple[Any, ...], torch.jit.ScriptModule] = {}
        self._can_trace = hasattr(torch, "jit") and hasattr(torch.jit, "trace")

    def __call__(
        self,
        z: torch.Tensor,
        tau: torch.Tensor,
        d: torch.Tensor,
        action_emb: torch.Tensor,
        positions: torch.Tensor | None = None,
        time_mask: torch.Tensor | None = None,
        past: list[KV] | None = None,
        return_kv: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, list[KV] | None]:
        """Same arguments and results as `SpaceTimeTransformer.forward`."""
        if past is None or positions is None or torch.is_grad_enabled() or not self._can_trace:
            return self.net(z, tau, d, action_emb, positions, time_mask, past, return_kv)
        inputs = (z, tau, d, action_emb, positions, tuple(past))
        if time_mask is not None:
            inputs += (time_mask,)
        key = (
            tuple(z.shape[:2]),
            positions.ndim,
            time_mask is not None,
            return_kv,
            z.device,
            z.dtype,
        )
        trace = self._traces.get(key)
        if trace is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the deprecation notice, on every trace
                trace = torch.jit.trace(_FramePass(self.net, return_kv), inputs, check_trace=False)
            self._traces[key] = trace
        out = trace(*inputs)
        return (out[0], out[1], list(out[2])) if return_kv else (out[0], out[1], None)
