"""The CNN autoencoder tokenizer: the fast baseline.

Each frame is encoded on its own by `num_downsamples` stages of (4x4 stride-2 conv, residual
blocks) that halve the resolution and double the width (from `base_channels` up to
`max_channels`), then a 1x1 conv + tanh bottleneck to `latent_dim` channels (with
`bottleneck_norm`, each cell first scaled to unit RMS over its channels). Every cell of the
final h x w grid is one latent token: N = h * w tokens of width D = latent_dim (64x64 frames and
3 downsamples give an 8x8 grid, one token per MiniGrid tile). The decoder mirrors it with 4x4
stride-2 transposed convs; its output is clamped to [0, 1] with a straight-through gradient.
No hidden layer runs at full resolution, which keeps CPU training cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from world_models.tokenizer import Tokenizer, check_video, video_to_float


@dataclass
class CNNTokenizerConfig:
    image_size: int = 64
    channels: int = 3
    base_channels: int = 32  # width after the first downsample, doubled after each next one
    max_channels: int = 128
    num_downsamples: int = 3  # 64 -> 8x8 latent grid
    blocks_per_stage: int = 1  # residual blocks at each downsampled resolution
    latent_dim: int = 16
    # Normalise each latent cell to unit RMS over its channels before the tanh, so the
    # bottleneck cannot saturate (at lr 1e-3 an unnormalised one can drive every latent to +-1,
    # after which every frame decodes to the mean image at ~19 dB).
    bottleneck_norm: bool = True

    # Values for settings a saved config lacks: tokenizers saved before `bottleneck_norm`
    # existed were trained without it (see `model_io.build_model`).
    SAVED_DEFAULTS: ClassVar[dict[str, object]] = {"bottleneck_norm": False}

    def __post_init__(self) -> None:
        for name in ("image_size", "channels", "base_channels", "max_channels", "latent_dim"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"CNNTokenizerConfig.{name} must be >= 1, got {getattr(self, name)}"
                )
        if self.num_downsamples < 0 or self.blocks_per_stage < 0:
            raise ValueError("CNNTokenizerConfig.num_downsamples and blocks_per_stage must be >= 0")
        if self.image_size % 2**self.num_downsamples:
            raise ValueError(
                f"image_size {self.image_size} is not divisible by 2**num_downsamples "
                f"= {2**self.num_downsamples}; change num_downsamples"
            )

    @property
    def widths(self) -> list[int]:
        """Channel width after each downsample, from image_size / 2 down to the latent grid."""
        n = self.num_downsamples
        return [min(self.base_channels * 2**i, self.max_channels) for i in range(n)]

    @property
    def grid_size(self) -> int:
        """Side of the latent grid h = w."""
        return self.image_size // 2**self.num_downsamples


class ChannelRMSNorm(nn.Module):
    """x (B, C, H, W) / RMS over C, without a learned gain (torch's rms_norm, channels last)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.movedim(1, -1), (x.shape[1],), eps=1e-6).movedim(-1, 1)


class ResBlock(nn.Module):
    """Residual block x + conv(act(conv(act(x)))); the last conv starts at zero, so every block
    starts as the identity (no normalisation layers: they slowed fitting in our tests)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CNNTokenizer(Tokenizer):
    """Per-frame conv autoencoder: video (B, T, H, W, C) <-> latents (B, T, h*w, latent_dim)."""

    def __init__(self, config: CNNTokenizerConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or CNNTokenizerConfig()
        self.num_latents = cfg.grid_size**2
        self.latent_dim = cfg.latent_dim
        w = [cfg.channels, *cfg.widths]  # w[i]: channels at resolution image_size / 2**i
        n = cfg.num_downsamples
        encoder: list[nn.Module] = []
        for i in range(n):
            encoder.append(nn.Conv2d(w[i], w[i + 1], 4, stride=2, padding=1))
            encoder += [ResBlock(w[i + 1]) for _ in range(cfg.blocks_per_stage)]
        encoder += [nn.SiLU(), nn.Conv2d(w[n], cfg.latent_dim, 1)]
        encoder += [ChannelRMSNorm()] if cfg.bottleneck_norm else []
        encoder.append(nn.Tanh())
        self.encoder = nn.Sequential(*encoder)

        decoder: list[nn.Module] = [nn.Conv2d(cfg.latent_dim, w[n], 1)]
        for i in reversed(range(n)):
            decoder += [ResBlock(w[i + 1]) for _ in range(cfg.blocks_per_stage)]
            if i > 0:
                decoder.append(nn.SiLU())
            decoder.append(nn.ConvTranspose2d(w[i + 1], w[i], 4, stride=2, padding=1))
        self.decoder = nn.Sequential(*decoder)
        # Start mid-range so every output pixel begins inside the [0, 1] clamp.
        nn.init.constant_(self.decoder[-1].bias, 0.5)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, C) uint8 or float in [0, 1] -> latents (B, T, N, D) in [-1, 1]."""
        cfg = self.config
        check_video(video, cfg.image_size, cfg.channels)
        batch, time = video.shape[:2]
        frames = video_to_float(video).flatten(0, 1).permute(0, 3, 1, 2)  # (B*T, C, H, W)
        latents = self.encoder(frames.to(self.decoder[0].weight.dtype))  # (B*T, D, h, w)
        return latents.flatten(2).transpose(1, 2).reshape(batch, time, self.num_latents, -1)

    def decoder_parameters(self) -> list[nn.Parameter]:
        return list(self.decoder.parameters())

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, T, N, D) -> video (B, T, H, W, C) float in [0, 1]."""
        cfg = self.config
        if latents.ndim != 4 or tuple(latents.shape[2:]) != (self.num_latents, self.latent_dim):
            raise ValueError(
                f"expected latents of shape (B, T, {self.num_latents}, {self.latent_dim}), "
                f"got {tuple(latents.shape)}"
            )
        batch, time = latents.shape[:2]
        grid = latents.flatten(0, 1).transpose(1, 2)  # (B*T, D, N)
        grid = grid.reshape(-1, self.latent_dim, cfg.grid_size, cfg.grid_size)
        frames = self.decoder(grid.to(self.decoder[0].weight.dtype))  # (B*T, C, H, W)
        # Clamp to [0, 1] with a straight-through gradient: a sigmoid here starves bright pixels
        # on dark backgrounds of gradient and stalls fitting at ~19 dB on MiniGrid-like frames.
        frames = frames + (frames.clamp(0, 1) - frames).detach()
        return frames.permute(0, 2, 3, 1).reshape(batch, time, *frames.shape[2:], cfg.channels)
