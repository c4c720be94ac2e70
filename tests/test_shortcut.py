"""Tests for the shortcut-forcing objective and sampler (world_models/shortcut.py) and the
symlog two-hot reward encoding (world_models/heads.py)."""

from __future__ import annotations

import pytest
import torch

from world_models.heads import TwoHot, symexp, symlog
from world_models.shortcut import add_noise, sample, sample_tau_d, shortcut_target

N, D = 4, 8


# --- shortcut objective and sampler ---------------------------------------------------------


def test_tau_convention() -> None:
    x, noise = torch.rand(2, 3, N, D), torch.randn(2, 3, N, D)
    assert torch.equal(add_noise(x, torch.ones(2, 3), noise), x)  # tau = 1 is clean
    assert torch.equal(add_noise(x, torch.zeros(2, 3), noise), noise)
    tau = torch.tensor([[0.25, 0.5, 0.75]]).expand(2, 3)
    assert torch.allclose(add_noise(x, tau, noise)[:, 1], 0.5 * x[:, 1] + 0.5 * noise[:, 1])


def test_tau_d_grid() -> None:
    g = torch.Generator().manual_seed(0)
    tau, d = sample_tau_d((20000,), 8, g)
    assert set(d.unique().tolist()) == {1.0, 0.5, 0.25, 0.125}
    assert torch.all(tau >= 0) and torch.all(tau <= 1 - d)  # never clean, never past 1
    assert torch.allclose(tau / d, (tau / d).round())  # on the grid that d reaches
    counts = torch.stack([(d == v).float().mean() for v in (1.0, 0.5, 0.25, 0.125)])
    assert torch.allclose(counts, torch.full((4,), 0.25), atol=0.02)  # d = 1 / U{1, 2, 4, 8}
    fine = (tau[d == 0.125] * 8).round().long().bincount().float()
    assert torch.allclose(fine / fine.sum(), torch.full((8,), 1 / 8), atol=0.03)
    with pytest.raises(ValueError, match="power of two"):
        sample_tau_d((3,), 6)


def test_shortcut_target_formula() -> None:
    x = torch.rand(1, 4, N, D)
    z = torch.randn(1, 4, N, D)
    tau = torch.tensor([[0.0, 0.25, 0.5, 0.5]])
    d = torch.tensor([[1 / 8, 1.0, 0.5, 0.25]])
    oracle = lambda z_, tau_, d_: x  # a perfect model for a one-point data set
    target, boot = shortcut_target(oracle, x, z, tau, d, k_max=8)
    assert boot.tolist() == [[False, True, True, True]]
    assert torch.allclose(target, x, atol=1e-5)
    still = lambda z_, tau_, d_: z_  # x_hat = z: zero velocity, the target is z itself
    target, _ = shortcut_target(still, x, z, tau, d, k_max=8)
    assert torch.equal(target[:, 0], x[:, 0]) and torch.allclose(target[:, 1:], z[:, 1:])
    # Linear velocity field: v(z, tau) = c everywhere -> x_target = z + (1 - tau) c.
    c = torch.randn(1, 4, N, D)
    const = lambda z_, tau_, d_: z_ + (1 - tau_[..., None, None]) * c
    target, _ = shortcut_target(const, x, z, tau, d, k_max=8)
    expected = z + (1 - tau[..., None, None]) * c
    assert torch.allclose(target[:, 1:], expected[:, 1:], atol=1e-5)


@pytest.mark.parametrize("sampler", ["euler", "renoise"])
def test_sampler_fresh_noise(sampler: str) -> None:
    x = torch.rand(3, N, D)
    seen = []

    def oracle(z, tau, d):
        seen.append((z.clone(), tau.clone(), d.clone()))
        return x

    out = sample(oracle, (3, N, D), 4, 8, torch.Generator().manual_seed(0), sampler)
    assert torch.allclose(out, x, atol=1e-6)
    assert [s[1][0].item() for s in seen] == [0.0, 0.25, 0.5, 0.75]
    assert all(torch.all(s[2] == 0.25) for s in seen)
    # Noise inside each sub-step's input: eps = (z - tau x) / (1 - tau).
    eps = [(z - tau[0] * x) / (1 - tau[0]) for z, tau, _ in seen]
    same = [torch.allclose(e, eps[0], atol=1e-5) for e in eps[1:]]
    # Euler follows the ODE (its implied noise stays the first draw); renoise draws fresh noise.
    assert all(same) if sampler == "euler" else not any(same)
    with pytest.raises(ValueError, match="power of two"):
        sample(oracle, (3, N, D), 3, 8)


def test_sampler_told_finest_step() -> None:
    """told_d conditions every sub-step on that step size; tau still advances by 1 / K."""
    seen = []

    def oracle(z, tau, d):
        seen.append((tau[0].item(), d[0].item()))
        return torch.zeros_like(z)

    sample(oracle, (2, N, D), 4, 8, torch.Generator().manual_seed(0), "renoise", told_d=1 / 8)
    assert seen == [(0.0, 0.125), (0.25, 0.125), (0.5, 0.125), (0.75, 0.125)]


# --- heads -----------------------------------------------------------------------------------


def test_two_hot_round_trip() -> None:
    two_hot = TwoHot(255, -20.0, 20.0)
    values = torch.tensor([0.0, 1.0, -1.0, 0.37, -123.4, 5e3, 1e6])
    target = two_hot.encode(values)
    assert torch.allclose(target.sum(-1), torch.ones(len(values)))
    assert ((target > 0).sum(-1) <= 2).all()
    decoded = two_hot.decode(torch.log(target))
    assert torch.allclose(decoded, values, rtol=1e-4, atol=1e-4)
    clipped = two_hot.decode(torch.log(two_hot.encode(torch.tensor(1e12))))
    assert torch.allclose(clipped, symexp(torch.tensor(20.0)), rtol=1e-4)
    assert torch.allclose(symexp(symlog(values)), values, rtol=1e-5)
    logits = torch.zeros(2, 255, requires_grad=True)
    two_hot.loss(logits, torch.tensor([0.5, -2.0])).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_flow_share_sends_frames_to_the_flow_loss() -> None:
    g = torch.Generator().manual_seed(0)
    tau, d = sample_tau_d((20000,), 8, g, flow_share=0.75)
    # 75% forced to d_min, the other 25% draw d uniformly (a quarter of them d_min too)
    assert abs((d == 0.125).float().mean().item() - (0.75 + 0.25 / 4)) < 0.02
    assert torch.allclose(tau / d, (tau / d).round()) and torch.all(tau <= 1 - d)
