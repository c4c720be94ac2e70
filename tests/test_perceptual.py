"""Perceptual loss backends: ST-LPIPS against its reference implementation, sanity, errors."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from world_models import perceptual
from world_models.perceptual import PerceptualLoss


def reference_pairs(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Four deterministic RGB pairs in [0, 1]: identical, fine texture added, shifted by one
    pixel, flipped upside down. Returns x, y of shape (4, 3, size, size)."""
    g = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    img = torch.stack(
        [0.5 + 0.5 * torch.sin(12 * xx + 5 * yy), 0.5 + 0.5 * torch.cos(9 * yy - 3 * xx), xx * yy]
    )[None]
    texture = (img + 0.1 * torch.sin(200 * xx * yy + 40 * xx)).clamp(0, 1)
    x = img.repeat(4, 1, 1, 1)
    y = torch.cat([img, texture, torch.roll(img, 1, dims=3), img.flip(2)])
    return x, y


# Distances for `reference_pairs()` computed by stlpips_pytorch 0.0.2's own
# `LPIPS(net=..., variant="shift_tolerant")` (run once with torchvision stubbed out, which its
# shift-tolerant path never uses). The project's published example (imgs/ex_p0.png vs
# imgs/ex_ref.png -> 0.7778) needs image files that are not shipped in the wheel.
REFERENCE = {
    "alex": [0.0, 0.042518, 0.005451, 0.389791],
    "vgg": [0.0, 0.433268, 0.041499, 0.579612],
}


@pytest.fixture(scope="module")
def alex() -> PerceptualLoss:
    return PerceptualLoss("stlpips", "alex")


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_stlpips_matches_reference_implementation(net: str) -> None:
    x, y = reference_pairs()
    with torch.no_grad():
        dist = PerceptualLoss("stlpips", net)(x, y)
    assert dist.shape == (4,)
    assert torch.allclose(dist, torch.tensor(REFERENCE[net]), atol=1e-5)


def test_stlpips_sanity(alex: PerceptualLoss) -> None:
    x, y = reference_pairs()
    with torch.no_grad():
        d = alex(x, y)
        d_swapped = alex(y, x)
    assert d[0].abs() < 1e-6  # d(x, x) = 0
    assert torch.allclose(d, d_swapped, atol=1e-6)  # symmetric
    assert d[2] < 0.1 * d[3]  # a one-pixel shift is far closer than a different image
    assert d[1] > 0.01 and d[3] > 0.1


def test_gradients_reach_inputs_and_weights_are_frozen(alex: PerceptualLoss) -> None:
    x, y = reference_pairs()
    x = torch.cat([x[:2], torch.zeros(1, 3, 64, 64)]).requires_grad_(True)
    alex(x, y[1:4]).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()  # finite even on a black image
    assert x.grad.abs().sum() > 0
    assert list(alex.parameters()) == []
    assert all(not b.requires_grad for b in alex.buffers())
    assert alex.state_dict() == {}  # frozen weights never reach a checkpoint
    alex.train()
    assert not alex.training


def test_grayscale_and_small_images(alex: PerceptualLoss) -> None:
    x, y = reference_pairs()
    with torch.no_grad():
        gray = alex(x[:, :1], y[:, :1])
        rgb = alex(x[:, :1].repeat(1, 3, 1, 1), y[:, :1].repeat(1, 3, 1, 1))
        assert torch.allclose(gray, rgb)
        x32, y32 = reference_pairs(32)
        small = alex(x32, y32)
    assert small.shape == (4,) and torch.isfinite(small).all()
    assert small[0].abs() < 1e-6 and small[3] > 0.1


def test_none_backend_is_zero() -> None:
    x, y = reference_pairs()
    assert torch.equal(PerceptualLoss("none")(x, y), torch.zeros(4))


def test_bad_arguments_are_clear(alex: PerceptualLoss) -> None:
    with pytest.raises(ValueError, match="backend"):
        PerceptualLoss("ssim")
    with pytest.raises(ValueError, match="net"):
        PerceptualLoss("stlpips", net="resnet")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        alex(torch.zeros(2, 3, 64, 64), torch.zeros(2, 3, 32, 32))


@pytest.mark.skipif(importlib.util.find_spec("lpips") is not None, reason="lpips is installed")
def test_lpips_backend_missing_says_how_to_install() -> None:
    with pytest.raises(ImportError, match="pip install"):
        PerceptualLoss("lpips")


def test_missing_stlpips_weights_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(perceptual.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install stlpips-pytorch"):
        PerceptualLoss("stlpips")
