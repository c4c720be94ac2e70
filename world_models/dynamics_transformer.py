"""The space-time transformer inside the Dreamer 4-style dynamics model.

Tokens per frame (S of them), in this order:
    N latent tokens (linear from D to dim) | 1 action token | R registers | 1 (tau, d) token |
    A agent tokens
plus a learned embedding per slot; with `action_in_latents` the action embedding is also added
to the frame's latent tokens. Every layer has space attention among the S tokens of a
frame; every `time_attention_every`-th layer (layers k-1, 2k-1, ...) first has causal time
attention, where each slot attends to the same slot in past frames and the current one (RoPE
over frame positions). Agent tokens read every token; no other token reads them (space mask;
time attention never mixes slots). Outputs: x_hat (clean latents, from the latent tokens) and
the normalised mean of the agent tokens (for the reward and continue heads).

KV cache: only time-attention layers carry state across frames; `forward(..., past=kv,
return_kv=True)` reads cached keys/values of past frames and returns them extended by the new
frames (keys are rotated at their own absolute positions, so RoPE stays relative).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from world_models.action_encoder import ActionEncoder
from world_models.layers import KV, Attention, RMSNorm, Rope, RotaryEmbedding, SwiGLU

if TYPE_CHECKING:
    from world_models.dynamics import DynamicsConfig


class NoiseLevelEmbedding(nn.Module):
    """(tau, d) -> one token: Fourier features of tau and of log2(1/d) / log2(k_max), then MLP."""

    def __init__(self, dim: int, k_max: int, num_freqs: int = 16) -> None:
        super().__init__()
        self.log_k_max = max(math.log2(k_max), 1.0)
        self.register_buffer("freqs", math.pi * torch.arange(1, num_freqs + 1), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(4 * num_freqs, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, tau: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """tau, d (...) -> (..., dim)."""
        step = torch.log2(1.0 / d) / self.log_k_max
        angles = torch.stack((tau, step), -1).float().unsqueeze(-1) * self.freqs  # (..., 2, F)
        return self.mlp(torch.cat((angles.sin(), angles.cos()), -1).flatten(-2))


class SpaceTimeBlock(nn.Module):
    """[causal time attention] + space attention + SwiGLU, each pre-RMSNorm with a residual."""

    def __init__(self, cfg: DynamicsConfig, time: bool) -> None:
        super().__init__()
        dim, heads, kv_heads, cap = cfg.dim, cfg.num_heads, cfg.num_kv_heads, cfg.attn_soft_cap
        self.time = time
        if time:
            self.time_norm = RMSNorm(dim)
            self.time_attn = Attention(dim, heads, kv_heads, qk_norm=True, soft_cap=cap)
        self.space_norm = RMSNorm(dim)
        self.space_attn = Attention(dim, heads, kv_heads, qk_norm=True, soft_cap=cap)
        self.mlp_norm = RMSNorm(dim)
        self.mlp = SwiGLU(dim, cfg.mlp_hidden_dim)

    def forward(
        self,
        x: torch.Tensor,
        space_mask: torch.Tensor,
        rope: Rope | None,
        time_mask: torch.Tensor | None,
        past: KV | None,
        return_kv: bool,
    ) -> tuple[torch.Tensor, KV | None]:
        """x (B, T, S, dim) -> same; time_mask (B*S, 1, T, L_past + T) or None."""
        b, t, s, dim = x.shape
        kv = None
        if self.time:
            xt = x.transpose(1, 2).reshape(-1, t, dim)
            out = self.time_attn(
                self.time_norm(xt), rope, time_mask, True, past_kv=past, return_kv=return_kv
            )
            if return_kv:
                out, kv = out
            x = x + out.reshape(b, s, t, dim).transpose(1, 2)
        xs = x.reshape(-1, s, dim)
        x = x + self.space_attn(self.space_norm(xs), mask=space_mask).reshape(b, t, s, dim)
        return x + self.mlp(self.mlp_norm(x)), kv


class SpaceTimeTransformer(nn.Module):
    """Latents + per-frame (tau, d) + action embeddings -> x_hat and agent features."""

    def __init__(self, cfg: DynamicsConfig) -> None:
        super().__init__()
        dim, n = cfg.dim, cfg.num_latents
        self.num_latents = n
        self.action_in_latents = cfg.action_in_latents
        self.num_agents = cfg.num_agent_tokens
        self.num_slots = n + 2 + cfg.num_registers + cfg.num_agent_tokens
        self.latent_in = nn.Linear(cfg.latent_dim, dim)
        self.action = ActionEncoder(cfg.action_spec, dim)
        self.noise_level = NoiseLevelEmbedding(dim, cfg.k_max)
        self.registers = nn.Parameter(torch.randn(cfg.num_registers, dim) * 0.02)
        self.agents = nn.Parameter(torch.randn(cfg.num_agent_tokens, dim) * 0.02)
        self.slot_embed = nn.Parameter(torch.randn(self.num_slots, dim) * 0.02)
        every = cfg.time_attention_every
        self.blocks = nn.ModuleList(
            SpaceTimeBlock(cfg, time=(i % every == every - 1)) for i in range(cfg.depth)
        )
        self.time_layers = [i for i, blk in enumerate(self.blocks) if blk.time]
        self.rope = RotaryEmbedding(dim // cfg.num_heads)
        self.out_norm = RMSNorm(dim)
        self.latent_out = nn.Linear(dim, cfg.latent_dim)
        self.agent_norm = RMSNorm(dim)
        is_agent = torch.arange(self.num_slots) >= self.num_slots - self.num_agents
        # space_mask[i, j]: slot i may read slot j; nobody but agents reads agents.
        self.register_buffer("space_mask", ~is_agent[None, :] | is_agent[:, None], persistent=False)

    def tokens(
        self, z: torch.Tensor, tau: torch.Tensor, d: torch.Tensor, action_emb: torch.Tensor
    ) -> torch.Tensor:
        """z (B, T, N, D), tau/d (B, T), action_emb (B, T, dim) -> tokens (B, T, S, dim)."""
        b, t = z.shape[:2]
        extra = (b, t, -1, -1)
        latents = self.latent_in(z)  # (B, T, N, dim)
        if self.action_in_latents:
            latents = latents + action_emb.unsqueeze(2)
        x = torch.cat(
            (
                latents,
                action_emb.unsqueeze(2),
                self.registers.expand(*extra),
                self.noise_level(tau, d).unsqueeze(2),
                self.agents.expand(*extra),
            ),
            dim=2,
        )
        return x + self.slot_embed

    def forward(
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
        """-> x_hat (B, T, N, D), agent features (B, T, dim), KV per time layer (or None).

        positions: frame positions (T,) or (B, T); default 0..T-1.
        time_mask: boolean (B, T, L_past + T), True = may attend; combined with causality.
        past: cached (k, v) per time layer, each (B*S, H_kv, L_past, head_dim).
        """
        b, t = z.shape[:2]
        s = self.num_slots
        x = self.tokens(z, tau, d, action_emb)
        if positions is None:
            positions = torch.arange(t, device=z.device)
        rope = self.rope(positions)
        if positions.ndim == 2:  # per-row positions: repeat for each slot, matching (B*S)
            rope = Rope(*(r.repeat_interleave(s, dim=0) for r in rope))
        if time_mask is not None:
            time_mask = time_mask.repeat_interleave(s, dim=0).unsqueeze(1)
        new_kv: list[KV] = []
        time_index = 0
        for block in self.blocks:
            layer_past = None
            if block.time:
                layer_past = past[time_index] if past is not None else None
                time_index += 1
            x, kv = block(x, self.space_mask, rope, time_mask, layer_past, return_kv)
            if kv is not None:
                new_kv.append(kv)
        x_hat = self.latent_out(self.out_norm(x[:, :, : self.num_latents]))
        agent = self.agent_norm(x[:, :, s - self.num_agents :]).mean(2)
        return x_hat, agent, (new_kv if return_kv else None)
