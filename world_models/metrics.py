"""Per-frame video metrics: MSE, PSNR, SSIM and perceptual distance.

Every metric takes `pred` and `target` videos (B, T, H, W, C), float in [0, 1] or uint8, and
returns per-frame values (B, T); `per_horizon` averages them over sequences into (T,) for tables.
Wrap calls in `torch.no_grad()` when only evaluating.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from pytorch_msssim import ssim as _ssim

from world_models.perceptual import PerceptualLoss
from world_models.tokenizer import video_to_float

PSNR_MIN_MSE = 1e-10  # identical frames score 100 dB instead of infinity, so averages stay finite


def _pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.ndim != 5 or pred.shape != target.shape:
        raise ValueError(
            "metrics expect two videos (B, T, H, W, C) of one shape, "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    return video_to_float(pred).float(), video_to_float(target).float()


def _frames(video: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W, C) -> (B*T, C, H, W)."""
    return video.flatten(0, 1).permute(0, 3, 1, 2)


def mse(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Per-frame squared error (B, T): the mean over pixels and channels, or with
    reduction="sum" the sum over them (the Moving MNIST protocol's per-frame "MSE")."""
    pred, target = _pair(pred, target)
    err = (pred - target).pow(2).flatten(2)
    if reduction == "mean":
        return err.mean(-1)
    if reduction == "sum":
        return err.sum(-1)
    raise ValueError(f"unknown reduction {reduction!r}; choose 'mean' or 'sum'")


def _decibels(frame_mse: torch.Tensor) -> torch.Tensor:
    return -10.0 * torch.log10(frame_mse.clamp_min(PSNR_MIN_MSE))


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame peak signal-to-noise ratio in dB (B, T), peak value 1."""
    return _decibels(mse(pred, target))


def changed_psnr(
    pred: torch.Tensor, target: torch.Tensor, reference: torch.Tensor, threshold: float = 1e-3
) -> torch.Tensor:
    """Per-frame PSNR in dB (B, T) over only the pixels where `target` differs from `reference`
    (by more than `threshold` in any channel), e.g. the last context frame: the moving part of
    the scene, which a whole-frame PSNR hides when the movers are small. NaN for frames with no
    changed pixel (average with nanmean)."""
    pred, target = _pair(pred, target)
    reference, _ = _pair(reference, target)
    changed = ((target - reference).abs().amax(-1) > threshold).flatten(2)  # (B, T, H*W)
    err = (pred - target).pow(2).mean(-1).flatten(2)
    count = changed.sum(-1)
    values = _decibels((err * changed).sum(-1) / count.clamp_min(1))
    return values.masked_fill(count == 0, float("nan"))


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame SSIM (B, T), averaged over channels (pytorch-msssim: 11x11 Gaussian window,
    sigma 1.5, K = (0.01, 0.03), valid region only; the window shrinks to the largest odd size
    that fits frames smaller than 11 pixels). Note skimage's default, used by OpenSTL's Moving
    MNIST tables, is a 7x7 uniform window, which gives slightly different values."""
    pred, target = _pair(pred, target)
    batch, time, height, width, _ = pred.shape
    side = min(height, width)
    if side < 2:
        raise ValueError(f"SSIM needs frames of at least 2x2 pixels, got {height}x{width}")
    win_size = min(11, side if side % 2 else side - 1)
    values = _ssim(
        _frames(pred), _frames(target), data_range=1.0, size_average=False, win_size=win_size
    )
    return values.view(batch, time)


@functools.lru_cache(maxsize=4)
def _cached_perceptual(backend: str, net: str) -> PerceptualLoss:
    return PerceptualLoss(backend, net)


def perceptual(
    pred: torch.Tensor,
    target: torch.Tensor,
    model: PerceptualLoss | None = None,
    backend: str = "stlpips",
    net: str = "alex",
    chunk: int = 256,
) -> torch.Tensor:
    """Per-frame perceptual distance (B, T) with `model`, or a cached PerceptualLoss(backend,
    net); frames go through the network `chunk` at a time to bound memory."""
    pred, target = _pair(pred, target)
    batch, time = pred.shape[:2]
    model = model if model is not None else _cached_perceptual(backend, net).to(pred.device)
    x, y = _frames(pred), _frames(target)
    values = [model(x[i : i + chunk], y[i : i + chunk]) for i in range(0, x.shape[0], chunk)]
    return torch.cat(values).view(batch, time)


def per_horizon(values: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over sequences of per-frame values (B, T), or of a list of them joined along B,
    -> (T,): entry t is the metric at horizon t + 1."""
    if not isinstance(values, torch.Tensor):
        values = torch.cat(list(values))
    if values.ndim != 2:
        raise ValueError(f"per_horizon expects per-frame values (B, T), got {tuple(values.shape)}")
    return values.float().mean(0)
