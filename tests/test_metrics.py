"""Per-frame video metrics: MSE (mean and sum), PSNR, SSIM, perceptual, per-horizon means."""

from __future__ import annotations

import pytest
import torch

from world_models.metrics import changed_psnr, mse, per_horizon, perceptual, psnr, ssim
from world_models.perceptual import PerceptualLoss


def smooth_video(batch: int, time: int, size: int, channels: int) -> torch.Tensor:
    """Deterministic smooth video (B, T, size, size, C) in [0, 1] that changes per frame."""
    g = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    phase = torch.arange(batch * time, dtype=torch.float32).view(batch, time, 1, 1, 1)
    chan = torch.arange(channels, dtype=torch.float32)
    return 0.5 + 0.4 * torch.sin(6 * xx[..., None] + 4 * yy[..., None] + phase + chan)


def test_mse_and_psnr_of_known_errors() -> None:
    target = torch.full((2, 3, 16, 16, 3), 0.5)
    offsets = torch.tensor([0.1, 0.01, 0.0]).view(1, 3, 1, 1, 1)
    pred = target + offsets
    expected = offsets.view(1, 3).pow(2).expand(2, 3)
    assert torch.allclose(mse(pred, target), expected)
    assert torch.allclose(mse(pred, target, reduction="sum"), expected * 16 * 16 * 3)
    values = psnr(pred, target)
    assert values.shape == (2, 3)
    assert torch.allclose(values[:, :2], torch.tensor([20.0, 40.0]).expand(2, 2), atol=1e-3)
    assert torch.allclose(values[:, 2], torch.tensor(100.0))  # identical frames are capped
    as_uint8 = (target * 255).round().to(torch.uint8)
    assert torch.allclose(mse(as_uint8, as_uint8.float() / 255), torch.zeros(2, 3))


def test_changed_psnr_scores_only_the_pixels_that_moved() -> None:
    reference = torch.zeros(1, 2, 8, 8, 3)
    target = reference.clone()
    target[0, 0, 2, 3] = 1.0  # one pixel moved in frame 0; frame 1 is unchanged
    pred = target.clone()
    pred[0, 0, 2, 3] = 0.9  # off by 0.1 on the moved pixel
    pred[0, 0, 5, 5] = 0.5  # and wrong on a pixel that did not move: not counted
    values = changed_psnr(pred, target, reference)
    assert torch.allclose(values[0, 0], torch.tensor(20.0), atol=1e-3)
    assert torch.isnan(values[0, 1])
    # hold-last-frame (the reference itself) gets the whole change wrong: 0 dB here.
    assert torch.allclose(changed_psnr(reference, target, reference)[0, 0], torch.tensor(0.0))


@pytest.mark.parametrize(("size", "channels"), [(64, 3), (32, 1), (8, 3)])
def test_ssim_is_one_on_identical_frames_and_drops_with_noise(size: int, channels: int) -> None:
    torch.manual_seed(0)
    video = smooth_video(2, 3, size, channels)
    same = ssim(video, video)
    assert same.shape == (2, 3)
    assert torch.allclose(same, torch.ones(2, 3), atol=1e-5)
    noisy = (video + 0.3 * torch.randn_like(video)).clamp(0, 1)
    assert (ssim(noisy, video) < 0.8).all()
    slightly = (video + 0.02 * torch.randn_like(video)).clamp(0, 1)
    assert (ssim(slightly, video) > ssim(noisy, video)).all()


def test_perceptual_per_frame() -> None:
    video = smooth_video(2, 3, 64, 3)
    shifted = torch.roll(video, 8, dims=3)
    model = PerceptualLoss()
    with torch.no_grad():
        values = perceptual(shifted, video, model=model, chunk=4)
        direct = model(shifted[1, 2].permute(2, 0, 1)[None], video[1, 2].permute(2, 0, 1)[None])
        same = perceptual(video, video, model=model)
    assert values.shape == (2, 3) and (values > 0.01).all()
    assert torch.allclose(values[1, 2], direct[0], atol=1e-6)
    assert torch.allclose(same, torch.zeros(2, 3), atol=1e-6)
    assert torch.equal(perceptual(shifted, video, backend="none"), torch.zeros(2, 3))


def test_per_horizon_and_errors() -> None:
    values = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    assert torch.equal(per_horizon(values), torch.tensor([2.0, 3.0, 4.0]))
    assert torch.equal(per_horizon([values, values[:1]]), torch.tensor([5.0, 8.0, 11.0]) / 3)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        per_horizon(torch.zeros(3))
    with pytest.raises(ValueError, match=r"\(B, T, H, W, C\)"):
        psnr(torch.zeros(1, 2, 8, 8, 3), torch.zeros(1, 3, 8, 8, 3))
    with pytest.raises(ValueError, match="reduction"):
        mse(torch.zeros(1, 1, 8, 8, 1), torch.zeros(1, 1, 8, 8, 1), reduction="max")
    with pytest.raises(ValueError, match="at least 2x2"):
        ssim(torch.zeros(1, 1, 1, 16, 1), torch.zeros(1, 1, 1, 16, 1))
