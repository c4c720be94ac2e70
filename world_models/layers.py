"""Transformer building blocks shared by the tokenizer and the dynamics model.

Pre-norm blocks with RMSNorm, rotary position embeddings (RoPE), SwiGLU MLPs and multi-head
attention with QK-norm, grouped-query attention (GQA), optional attention-logit soft-capping,
an optional attention mask and a functional KV cache.

Shapes: tokens are (B, L, dim); inside attention q is (B, H, Lq, head_dim) and k, v are
(B, H_kv, Lk, head_dim). Masks follow `torch.nn.functional.scaled_dot_product_attention`:
a boolean mask is True where a query MAY attend to a key; a float mask is added to the logits.
Masks broadcast to (B, H, Lq, Lk), where Lk counts cached keys first, then the new ones.

RoPE: `RotaryEmbedding(head_dim, num_axes)(positions)` returns a `Rope` (cos, sin) for integer
positions: shape (L,) or (B, L) for one axis, or (L, A) / (B, L, A) for A axes (e.g. A = 2 for
the row and column of an image patch; the rotated pairs are split evenly among the axes).
Callers that do not need 2D positions may use 1D positions over flattened tokens. Keys are
rotated before they are cached, so a cache holds keys at their own positions and new tokens
only need the rope for their own positions (RoPE depends only on position differences).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

KV = tuple[torch.Tensor, torch.Tensor]  # (k, v), each (B, H_kv, L, head_dim), k already rotated


class Rope(NamedTuple):
    """The rotation at full width, each (L, head_dim) or (B, L, head_dim): cos = [cos, cos] and
    sin = [-sin, sin] of the head_dim // 2 angles, so rotating is x * cos + swap_halves(x) * sin."""

    cos: torch.Tensor
    sin: torch.Tensor


class RMSNorm(nn.Module):
    """Root-mean-square norm over the last dimension with a learned gain."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x * rsqrt(mean(x^2) + eps) * weight in float32, fused; keeps the input dtype (bf16)
        dim = (x.shape[-1],)
        if x.dtype == self.weight.dtype == torch.float32:  # no casts: fewer ops at batch 1
            return F.rms_norm(x, dim, self.weight, self.eps)
        return F.rms_norm(x.float(), dim, self.weight.float(), self.eps).to(x.dtype)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding for `num_axes` integer position axes.

    `head_dim` must be even and `head_dim // 2` divisible by `num_axes`. Angles are computed in
    float64, so large absolute positions (long rollouts with a sliding KV window) stay exact.
    """

    def __init__(self, head_dim: int, num_axes: int = 1, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2 or (head_dim // 2) % num_axes:
            raise ValueError(
                f"head_dim={head_dim} must be even and head_dim/2 divisible by num_axes={num_axes}"
            )
        self.head_dim = head_dim
        self.num_axes = num_axes
        per_axis = head_dim // 2 // num_axes
        inv_freq = base ** (-torch.arange(per_axis, dtype=torch.float64) / per_axis)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor) -> Rope:
        """positions: (L,) / (B, L) for one axis, (L, A) / (B, L, A) for A axes -> Rope."""
        pos = positions.to(torch.float64)
        if self.num_axes == 1:
            pos = pos.unsqueeze(-1)
        elif pos.shape[-1] != self.num_axes:
            raise ValueError(f"positions need a last axis of size {self.num_axes}, got {pos.shape}")
        angles = (pos.unsqueeze(-1) * self.inv_freq).flatten(-2)  # (..., L, head_dim // 2)
        dtype = torch.get_default_dtype()
        cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
        return Rope(torch.cat((cos, cos), -1), torch.cat((-sin, sin), -1))


def apply_rope(x: torch.Tensor, rope: Rope) -> torch.Tensor:
    """Rotate x (B, H, L, head_dim) by `rope` (rotate-half pairing: i with i + head_dim/2)."""
    cos, sin = rope.cos, rope.sin
    if cos.ndim == 3:  # (B, L, head_dim) -> (B, 1, L, head_dim)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    x1, x2 = x.chunk(2, dim=-1)
    # [x1 cos - x2 sin, x2 cos + x1 sin]: the rope is computed once a pass, this once a use
    return x * cos.to(x.dtype) + torch.cat((x2, x1), dim=-1) * sin.to(x.dtype)


def causal_mask(
    num_queries: int, num_keys: int, device: torch.device | None = None
) -> torch.Tensor:
    """Boolean (Lq, Lk) mask, bottom-right aligned: the last query sees every key, query i sees
    keys up to index i + (Lk - Lq). Use this rather than `is_causal` when keys include a cache."""
    q = torch.arange(num_queries, device=device).unsqueeze(1) + (num_keys - num_queries)
    return torch.arange(num_keys, device=device).unsqueeze(0) <= q


class SwiGLU(nn.Module):
    """SwiGLU MLP: W_out(silu(W_gate x) * W_up x). Default hidden width 8/3 * dim, rounded up to
    a multiple of 8 (the parameter count of a 4x GELU MLP)."""

    def __init__(self, dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden = hidden_dim or 8 * math.ceil(8 * dim / 3 / 8)
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)
        self.out = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.out(F.silu(gate) * up)


class Attention(nn.Module):
    """Multi-head self-attention with QK-norm, GQA, optional soft-capping and a KV cache.

    num_kv_heads: key/value heads (GQA); must divide num_heads; None means num_heads.
    soft_cap: if set, logits become soft_cap * tanh(logits / soft_cap). This takes a manual
        attention path (slower, O(L^2) memory); None uses `scaled_dot_product_attention`.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        qk_norm: bool = True,
        soft_cap: float | None = None,
    ) -> None:
        super().__init__()
        num_kv_heads = num_kv_heads or num_heads
        if dim % num_heads or num_heads % num_kv_heads:
            raise ValueError(
                f"dim={dim} must be divisible by num_heads={num_heads}, "
                f"and num_heads by num_kv_heads={num_kv_heads}"
            )
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = dim // num_heads
        self.soft_cap = soft_cap
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * num_kv_heads * self.head_dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        rope: Rope | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        past_kv: KV | None = None,
        return_kv: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, KV]:
        """x (B, L, dim) -> (B, L, dim); with return_kv also (k, v) = past keys + new keys.

        rope: rotation for the L new tokens (cached keys are already rotated).
        mask: boolean (True = attend) or additive, broadcastable to (B, H, L, L_past + L).
        is_causal: causal over the new tokens, bottom-right aligned when a cache is given;
            combined (AND) with `mask` if both are given.
        """
        b, n, _ = x.shape
        q = self.q(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        kv = self.kv(x).view(b, n, 2, self.num_kv_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        if past_kv is not None:
            k = torch.cat((past_kv[0], k), dim=2)
            v = torch.cat((past_kv[1], v), dim=2)
        out = self._attend(q, k, v, mask, is_causal)
        out = self.proj(out.transpose(1, 2).reshape(b, n, -1))
        return (out, (k, v)) if return_kv else out

    def _attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
    ) -> torch.Tensor:
        """q (B, H, Lq, hd), k/v (B, H_kv, Lk, hd) -> (B, H, Lq, hd)."""
        b, h, lq, hd = q.shape
        h_kv, lk = k.shape[1], k.shape[2]
        if is_causal and lq == 1:
            is_causal = False  # bottom-right aligned: a single query sees every key
        if is_causal and (mask is not None or lq != lk or self.soft_cap is not None):
            causal = causal_mask(lq, lk, q.device)
            if mask is None:
                mask = causal
            elif mask.dtype == torch.bool:
                mask = mask & causal
            else:
                mask = mask.masked_fill(~causal, float("-inf"))
            is_causal = False
        groups = h // h_kv
        if self.soft_cap is None:
            if groups > 1:
                k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
        # GQA without copying keys: the G = H / H_kv query heads of a kv head share its keys.
        q = q.reshape(b, h_kv, -1, hd)
        logits = (q @ k.transpose(-2, -1)).mul_(1 / (math.sqrt(hd) * self.soft_cap))
        logits = (logits.tanh_() * self.soft_cap).view(b, h_kv, groups, lq, lk)
        if mask is not None:
            mask = _group_heads(mask, groups)
            logits = (
                logits.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else logits + mask
            )
        weights = logits.softmax(dim=-1).view(b, h_kv, groups * lq, lk)
        return (weights @ v).view(b, h, lq, hd)


def _group_heads(mask: torch.Tensor, groups: int) -> torch.Tensor:
    """A mask broadcastable to (B, H, Lq, Lk) -> one broadcastable to (B, H_kv, G, Lq, Lk)."""
    mask = mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape))
    if mask.shape[1] == 1:
        return mask.unsqueeze(2)
    return mask.unflatten(1, (-1, groups))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + Attention(RMSNorm(x)), then x + SwiGLU(RMSNorm(x))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        mlp_hidden_dim: int | None = None,
        qk_norm: bool = True,
        soft_cap: float | None = None,
    ) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(dim)
        self.attn = Attention(dim, num_heads, num_kv_heads, qk_norm, soft_cap)
        self.mlp_norm = RMSNorm(dim)
        self.mlp = SwiGLU(dim, mlp_hidden_dim)

    def forward(
        self,
        x: torch.Tensor,
        rope: Rope | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        past_kv: KV | None = None,
        return_kv: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, KV]:
        """x (B, L, dim) -> same shape; arguments as in `Attention.forward`."""
        out = self.attn(self.attn_norm(x), rope, mask, is_causal, past_kv, return_kv)
        kv = None
        if return_kv:
            out, kv = out
        x = x + out
        x = x + self.mlp(self.mlp_norm(x))
        return (x, kv) if return_kv else x
