"""Dreamer 4's tokenizer loss: MSE + 0.2 x perceptual, each term over its running RMS.

loss = mse / rms(mse) + w * perceptual / rms(perceptual), where rms(term) is the square root of
an exponential moving average of the term's squared batch value, used without gradient. The
normalisation keeps both terms near 1 however small they get, so neither starves the other.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from world_models.metrics import psnr
from world_models.perceptual import PerceptualLoss


class ReconstructionLoss(nn.Module):
    """forward(pred, target) on videos (B, T, H, W, C) in [0, 1] -> (loss, metrics).

    The running mean squares are buffers (`mean_square` = [mse, perceptual], `updates`), so they
    are checkpointed with the module and a resumed run continues with them. They are updated
    only in training mode, before normalising, so the first training step's terms are exactly
    1 and w. Under torch.distributed the batch values are averaged over processes first, so
    every rank holds the same estimate (so every rank must call it in training mode, in step).
    In eval mode the stored estimate is used (the batch's own values before any update).
    `metrics` holds floats: mse, perceptual, psnr (mean per-frame dB) and each term's rms.

    The perceptual network costs several times a small tokenizer on CPU: `perceptual_frames`
    computes that term on at most this many randomly chosen frames of each batch (an unbiased
    estimate of the mean; None uses every frame).
    """

    def __init__(
        self,
        perceptual: str = "stlpips",
        perceptual_weight: float = 0.2,
        rms_momentum: float = 0.99,
        perceptual_net: str = "alex",
        perceptual_frames: int | None = None,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if not 0.0 <= rms_momentum < 1.0:
            raise ValueError(f"rms_momentum must be in [0, 1), got {rms_momentum}")
        if perceptual_weight < 0:
            raise ValueError(f"perceptual_weight must be >= 0, got {perceptual_weight}")
        self.perceptual = PerceptualLoss(perceptual, perceptual_net)
        if perceptual_frames is not None and perceptual_frames < 1:
            raise ValueError(f"perceptual_frames must be >= 1 or None, got {perceptual_frames}")
        self.perceptual_weight = perceptual_weight
        self.perceptual_frames = perceptual_frames
        self.rms_momentum = rms_momentum
        self.eps = eps
        self.register_buffer("mean_square", torch.zeros(2))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def _update(self, values: torch.Tensor) -> None:
        square = values.pow(2)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(square)
            square /= dist.get_world_size()
        ema = self.rms_momentum * self.mean_square + (1 - self.rms_momentum) * square
        self.mean_square.copy_(torch.where(self.updates == 0, square, ema))
        self.updates += 1

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if pred.ndim != 5 or pred.shape != target.shape:
            raise ValueError(
                "ReconstructionLoss expects two videos (B, T, H, W, C) of one shape, "
                f"got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        pred, target = pred.float(), target.float()
        mse = (pred - target).pow(2).mean()
        if self.perceptual.backend == "none" or self.perceptual_weight == 0:
            perc = mse.new_zeros(())
        else:
            x, y = pred.flatten(0, 1), target.flatten(0, 1)  # (B*T, H, W, C)
            if self.perceptual_frames is not None and self.perceptual_frames < x.shape[0]:
                pick = torch.randperm(x.shape[0], device=x.device)[: self.perceptual_frames]
                x, y = x[pick], y[pick]
            perc = self.perceptual(x.permute(0, 3, 1, 2), y.permute(0, 3, 1, 2)).mean()
        values = torch.stack([mse, perc]).detach()
        if self.training:
            self._update(values)
        square = torch.where(self.updates == 0, values.pow(2), self.mean_square)
        rms = square.sqrt().clamp_min(self.eps)
        loss = mse / rms[0] + self.perceptual_weight * perc / rms[1]
        metrics = {
            "mse": mse.item(),
            "perceptual": perc.item(),
            "psnr": psnr(pred.detach(), target).mean().item(),
            "rms_mse": rms[0].item(),
            "rms_perceptual": rms[1].item(),
        }
        return loss, metrics
