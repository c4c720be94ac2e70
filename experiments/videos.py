"""Writing frame sequences as MP4 (imageio-ffmpeg's bundled binary) or GIF."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from world_models.atomic import publish


def _as_rgb(frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """(T, H, W[, C]) uint8 frames as (T, H, W, 3); greyscale is repeated to RGB."""
    arr = np.asarray(frames)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"frames must be (T, H, W), (T, H, W, 1) or (T, H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return arr


def write_video(
    frames: Sequence[np.ndarray] | np.ndarray,
    path: str | os.PathLike,
    fps: int = 10,
    scale: int = 4,
) -> Path:
    """Write frames to `path` (.mp4 or .gif), upscaled by `scale` (nearest) so pixels stay crisp.

    The file is written beside its destination and renamed into place, so a crash never
    leaves a half-written video under the final name.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ValueError(f"video path must end in .mp4 or .gif, got {path}")
    arr = _as_rgb(frames)
    if scale > 1:
        arr = arr.repeat(scale, axis=1).repeat(scale, axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{suffix}")
    if suffix == ".mp4":
        writer = imageio.get_writer(
            tmp, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1, quality=8
        )
    else:
        writer = imageio.get_writer(tmp, format="GIF", duration=1000 / fps, loop=0)
    with writer:
        for frame in arr:
            writer.append_data(frame)
    publish(tmp, path)
    return path
