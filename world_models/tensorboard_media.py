"""Real-versus-dream media for TensorBoard: an image strip, an animated GIF and the PSNR.

`SummaryWriter.add_video` needs `moviepy.editor`, which moviepy 2 removed, so the GIF is encoded
here with Pillow and written as the same image summary TensorBoard's own video helper makes.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter

from world_models.metrics import psnr
from world_models.tokenizer import video_to_float


def gif_summary(tag: str, frames: np.ndarray, fps: int = 5) -> Summary:
    """An animated-GIF image summary of uint8 frames (T, H, W, C), C in {1, 3}."""
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3) or frames.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 frames (T, H, W, 1 or 3), got {frames.dtype} {frames.shape}"
        )
    images = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
    buf = io.BytesIO()
    duration = max(1, round(1000 / fps))
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    t, h, w, c = frames.shape
    image = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=buf.getvalue())
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def log_real_over_dream(
    writer: SummaryWriter, tag: str, real: torch.Tensor, dream: torch.Tensor, step: int
) -> None:
    """real, dream: (T, H, W, C) uint8, or float in [0, 1]. Logs `{tag}/real_over_dream` (the
    frames stacked vertically), `{tag}/dream_video` (the same as a GIF) and `{tag}/dream_psnr`
    (mean over the T frames)."""
    real, dream = video_to_float(real).float(), video_to_float(dream).float()
    grid = torch.cat([real, dream], dim=1).clamp(0, 1)  # (T, 2H, W, C)
    writer.add_images(f"{tag}/real_over_dream", grid, step, dataformats="NHWC")
    frames = (grid * 255).round().to(torch.uint8).cpu().numpy()
    writer._get_file_writer().add_summary(gif_summary(f"{tag}/dream_video", frames), step)
    writer.add_scalar(f"{tag}/dream_psnr", psnr(dream[None], real[None]).mean(), step)
