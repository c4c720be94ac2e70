"""Tests for the shared transformer layers (world_models/layers.py)."""

from __future__ import annotations

import pytest
import torch

from world_models.layers import (
    Attention,
    RMSNorm,
    RotaryEmbedding,
    SwiGLU,
    TransformerBlock,
    apply_rope,
    causal_mask,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_rmsnorm_unit_rms() -> None:
    x = torch.randn(3, 5, 16) * 7 + 2
    y = RMSNorm(16)(x)
    assert torch.allclose(y.pow(2).mean(-1), torch.ones(3, 5), atol=1e-4)


def test_swiglu_shape() -> None:
    assert SwiGLU(24)(torch.randn(2, 3, 24)).shape == (2, 3, 24)


def test_rope_is_relative() -> None:
    rope = RotaryEmbedding(16)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(pq: int, pk: int) -> torch.Tensor:
        rq, rk = rope(torch.tensor([pq])), rope(torch.tensor([pk]))
        return (apply_rope(q, rq) * apply_rope(k, rk)).sum()

    assert torch.allclose(score(3, 1), score(1003, 1001), atol=1e-4)
    assert not torch.allclose(score(3, 1), score(3, 2), atol=1e-3)
    assert torch.allclose(apply_rope(q, rope(torch.tensor([0]))), q)


def test_rope_rotates_each_i_with_i_plus_half_exactly() -> None:
    rope = RotaryEmbedding(16)
    r = rope(torch.tensor([[0, 5, 9], [2, 3, 700]]))  # (B, L) positions
    x = torch.randn(2, 4, 3, 16)
    angles = torch.tensor([[0, 5, 9], [2, 3, 700]], dtype=torch.float64)[..., None] * rope.inv_freq
    cos, sin = angles.cos().float()[:, None], angles.sin().float()[:, None]
    x1, x2 = x.chunk(2, -1)
    expected = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), -1)
    assert torch.equal(apply_rope(x, r), expected)


def test_rope_2d_axes_and_errors() -> None:
    rope = RotaryEmbedding(16, num_axes=2)
    pos = torch.stack(torch.meshgrid(torch.arange(2), torch.arange(3), indexing="ij"), -1)
    r = rope(pos.reshape(6, 2))
    assert r.cos.shape == r.sin.shape == (6, 16)
    # Row axis uses the first half of the frequencies, column axis the second half.
    assert torch.allclose(r.cos[1, :4], torch.ones(4)) and not torch.allclose(
        r.cos[1, 4:8], r.cos[0, 4:8]
    )
    with pytest.raises(ValueError, match="last axis"):
        rope(torch.arange(6))
    with pytest.raises(ValueError, match="head_dim"):
        RotaryEmbedding(10, num_axes=2)


def test_causal_mask_bottom_right() -> None:
    m = causal_mask(2, 4)
    assert m.tolist() == [[True, True, True, False], [True, True, True, True]]


@pytest.mark.parametrize("soft_cap", [None, 30.0])
def test_kv_cache_matches_full_causal(soft_cap: float | None) -> None:
    attn = Attention(32, num_heads=4, num_kv_heads=2, soft_cap=soft_cap)
    rope = RotaryEmbedding(8)
    x = torch.randn(2, 7, 32)
    full = attn(x, rope=rope(torch.arange(7)), is_causal=True)
    out, kv = attn(x[:, :4], rope=rope(torch.arange(4)), is_causal=True, return_kv=True)
    assert kv[0].shape == (2, 2, 4, 8)
    pieces = [out]
    for t in range(4, 7):
        step = x[:, t : t + 1]
        out, kv = attn(step, rope=rope(torch.tensor([t])), past_kv=kv, return_kv=True)
        pieces.append(out)
    assert torch.allclose(torch.cat(pieces, 1), full, atol=1e-5)


def test_causality_and_mask() -> None:
    attn = Attention(16, num_heads=2)
    x = torch.randn(1, 5, 16)
    y = attn(x, is_causal=True)
    x2 = x.clone()
    x2[:, 3:] += 1.0
    y2 = attn(x2, is_causal=True)
    assert torch.allclose(y[:, :3], y2[:, :3], atol=1e-6)
    assert not torch.allclose(y[:, 3:], y2[:, 3:], atol=1e-3)
    # A boolean mask that hides token 0 from everyone but itself.
    mask = torch.ones(5, 5, dtype=torch.bool)
    mask[1:, 0] = False
    x3 = x.clone()
    x3[:, 0] += 1.0
    assert torch.allclose(attn(x, mask=mask)[:, 1:], attn(x3, mask=mask)[:, 1:], atol=1e-6)


def test_soft_cap_matches_fast_path_when_large() -> None:
    fast = Attention(32, num_heads=4, num_kv_heads=1)
    capped = Attention(32, num_heads=4, num_kv_heads=1, soft_cap=1e6)
    capped.load_state_dict(fast.state_dict())
    x = torch.randn(2, 6, 32)
    mask = torch.rand(6, 6) > 0.3
    mask.fill_diagonal_(True)
    assert torch.allclose(fast(x, mask=mask), capped(x, mask=mask), atol=1e-5)
    capped.soft_cap = 0.1  # a tight cap flattens attention: output must change
    assert not torch.allclose(fast(x), capped(x), atol=1e-3)


def _soft_capped_reference(attn: Attention, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The soft-capped attention written out: keys repeated per query head, then masked."""
    b, n, _ = x.shape
    h, h_kv, hd = attn.num_heads, attn.num_kv_heads, attn.head_dim
    q = attn.q_norm(attn.q(x).view(b, n, h, hd).transpose(1, 2))
    k, v = attn.kv(x).view(b, n, 2, h_kv, hd).permute(2, 0, 3, 1, 4)
    k, v = attn.k_norm(k).repeat_interleave(h // h_kv, 1), v.repeat_interleave(h // h_kv, 1)
    logits = attn.soft_cap * torch.tanh(q @ k.transpose(-2, -1) / hd**0.5 / attn.soft_cap)
    logits = logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else logits + mask
    out = logits.softmax(-1) @ v
    return attn.proj(out.transpose(1, 2).reshape(b, n, -1))


@pytest.mark.parametrize("mask_shape", [(6, 6), (2, 1, 6, 6), (2, 4, 6, 6), (1, 6, 6)])
@pytest.mark.parametrize("additive", [False, True])
def test_soft_capped_gqa_matches_reference(mask_shape: tuple, additive: bool) -> None:
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, num_kv_heads=2, soft_cap=2.0)
    x = torch.randn(2, 6, 32)
    mask = torch.rand(mask_shape) > 0.4
    mask[..., 0] = True  # every query keeps a key
    if additive:
        mask = torch.zeros(mask_shape).masked_fill(~mask, float("-inf"))
    assert torch.allclose(attn(x, mask=mask), _soft_capped_reference(attn, x, mask), atol=1e-5)


def test_block_shapes_and_bad_heads() -> None:
    block = TransformerBlock(32, num_heads=4, num_kv_heads=2)
    y, kv = block(torch.randn(2, 3, 32), return_kv=True)
    assert y.shape == (2, 3, 32) and kv[1].shape == (2, 2, 3, 8)
    with pytest.raises(ValueError, match="divisible"):
        Attention(32, num_heads=4, num_kv_heads=3)
