"""Real-over-dream media in TensorBoard: the image strip, the GIF and the PSNR scalar."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from world_models.tensorboard_media import gif_summary, log_real_over_dream


def test_gif_summary_is_an_animated_gif():
    frames = np.random.default_rng(0).integers(0, 256, (5, 8, 6, 1), dtype=np.uint8)
    image = gif_summary("x", frames).value[0].image
    assert (image.height, image.width, image.colorspace) == (8, 6, 1)
    gif = Image.open(io.BytesIO(image.encoded_image_string))
    assert gif.format == "GIF" and gif.n_frames == 5


def test_gif_summary_rejects_float_frames():
    with pytest.raises(ValueError, match="uint8"):
        gif_summary("x", np.zeros((2, 4, 4, 3), np.float32))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_log_real_over_dream_writes_images_video_and_psnr(tmp_path, dtype):
    real = torch.zeros(4, 8, 8, 3)
    dream = torch.full((4, 8, 8, 3), 0.1)
    if dtype == torch.uint8:
        real, dream = (real * 255).to(dtype), (dream * 255).round().to(dtype)
    with SummaryWriter(tmp_path) as writer:
        log_real_over_dream(writer, "dynamics", real, dream, step=3)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert {"dynamics/real_over_dream", "dynamics/dream_video"} <= set(events.Tags()["images"])
    (value,) = events.Scalars("dynamics/dream_psnr")
    assert value.step == 3 and value.value == pytest.approx(
        20.0, abs=0.2
    )  # MSE ~0.01 (26/255 in uint8)


def test_return_chart_curves_share_a_tag_and_a_resume_hides_a_killed_runs_later_points(tmp_path):
    from agents.return_chart import ReturnChart

    chart = ReturnChart(tmp_path)
    for step in (1, 2, 3, 4):  # a run killed after its checkpoint at step 2
        chart.add({"dream": float(step), "real": -float(step)}, step)
    chart.close()
    chart = ReturnChart(tmp_path, purge_step=3)  # resumed from step 2
    for step in (3, 4):
        chart.add({"dream": 10.0 * step, "real": -10.0 * step}, step)
    chart.close()
    for curve, sign in (("dream", 1), ("real", -1)):
        events = EventAccumulator(str(tmp_path / f"return_{curve}"))
        events.Reload()
        points = [(e.step, e.value) for e in events.Scalars("return")]
        assert points == [(1, sign * 1.0), (2, sign * 2.0), (3, sign * 30.0), (4, sign * 40.0)]
