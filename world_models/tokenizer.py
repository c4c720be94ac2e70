"""The one interface every video tokenizer implements.

A tokenizer maps uint8 video (B, T, H, W, C) to continuous latents (B, T, N, D) in [-1, 1]
(N latent tokens of width D per frame, tanh bottleneck) and back to float video in [0, 1].
Models are built from a dataclass config whose fields are JSON-serialisable, so a bundle can
store `dataclasses.asdict(model.config)` and rebuild the model with `Model(Config(**d))`.
"""

from __future__ import annotations

import torch
from torch import nn


def video_to_float(video: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, C) in [0, 255] -> float32 in [0, 1]; float input (in [0, 1]) is
    passed through, float64 as float32."""
    if video.dtype == torch.uint8:
        return video.float() / 255.0
    if not video.is_floating_point():
        raise ValueError(f"video must be uint8 in [0, 255] or float in [0, 1], got {video.dtype}")
    return video.float() if video.dtype == torch.float64 else video


def check_video(video: torch.Tensor, image_size: int, channels: int) -> None:
    """Raise a clear error unless `video` is (B, T, image_size, image_size, channels)."""
    expected = (image_size, image_size, channels)
    if video.ndim != 5 or tuple(video.shape[2:]) != expected:
        raise ValueError(
            f"expected video of shape (B, T, {image_size}, {image_size}, {channels}), "
            f"got {tuple(video.shape)}"
        )


class Tokenizer(nn.Module):
    """Base class: `encode`, `decode`, and `forward` (reconstruction used for training)."""

    num_latents: int  # N, latent tokens per frame
    latent_dim: int  # D, width of each latent token
    decodes_in_context = False  # True: a frame's pixels depend on earlier frames' latents, and
    # the tokenizer has `decode_start` / `decode_next` to decode a rollout frame by frame

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, C) uint8 or float in [0, 1] -> latents (B, T, N, D) in [-1, 1]."""
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, T, N, D) -> video (B, T, H, W, C) float in [0, 1]."""
        raise NotImplementedError

    def decoder_parameters(self) -> list[nn.Parameter]:
        """The parameters only `decode` uses: what fine-tuning the decoder trains, leaving the
        latent space (and a dynamics model that reads it) as it is."""
        raise NotImplementedError

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Reconstruction (B, T, H, W, C) in [0, 1]; in training mode it applies any masking
        (MAE patch dropout) the model trains with."""
        return self.decode(self.encode(video))
