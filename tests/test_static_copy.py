"""Static-pixel copy (`world_models.world_model.copy_static_pixels`, a bundle's
`sampling.copy_threshold`): imagined frames keep the previous frame where the decoded frame did
not change."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import LANE_ACTIONS, with_sampling

from envs.dream import DreamEnv
from envs.dream_vector import DreamVectorEnv
from world_models.world_model import copy_static_pixels


def test_unchanged_pixels_keep_the_previous_frame() -> None:
    previous_decoded = torch.zeros(1, 8, 8, 3)
    decoded = previous_decoded.clone()
    decoded[0, 4, 4, 1] = 0.5  # one pixel changes in one channel
    decoded[0, 0, 7] = 0.05  # below the threshold: not a change
    previous = torch.rand(1, 8, 8, 3)
    out = copy_static_pixels(decoded, previous_decoded, previous, threshold=0.1)
    changed = torch.zeros(8, 8, dtype=torch.bool)
    changed[3:6, 3:6] = True  # the changed pixel and its 3x3 neighbourhood
    assert torch.equal(out[0][changed], decoded[0][changed])
    assert torch.equal(out[0][~changed], previous[0][~changed])


@pytest.mark.parametrize("kind", ["cnn", "transformer"])
def test_a_dream_that_never_changes_enough_shows_its_start_frame(
    kind: str, lane_bundle, transformer_bundle, tmp_path
) -> None:
    """Above any change a decoder makes (0.999), every imagined frame is the real start frame,
    in a single env and in each row of a vector env, across a partial reset."""
    source = lane_bundle if kind == "cnn" else transformer_bundle
    bundle = with_sampling(source, tmp_path / "still", copy_threshold=0.999)
    env = DreamEnv(bundle, horizon=100)
    start, _ = env.reset(seed=3)
    LANE_ACTIONS.seed(0)
    for _ in range(3):
        assert np.array_equal(env.step(LANE_ACTIONS.sample())[0], start)
    venv = DreamVectorEnv(2, bundle=bundle, horizon=100, continue_threshold=0.0)
    starts, _ = venv.reset(seed=[1, 2])
    actions = np.stack([LANE_ACTIONS.sample(), LANE_ACTIONS.sample()])
    assert np.array_equal(venv.step(actions)[0], starts)
    fresh, _ = venv.reset(seed=[5, None], options={"reset_mask": np.array([True, False])})
    assert np.array_equal(fresh[1], starts[1]) and not np.array_equal(fresh[0], starts[0])
    assert np.array_equal(venv.step(actions)[0], fresh)


def test_copy_changes_only_the_pixels_the_decoder_left_alone(lane_bundle, tmp_path) -> None:
    """With copy the frame is, pixel by pixel, either the plain dream's or the start frame; at
    a threshold inside the range of the decoder's changes, some pixels are of each kind."""
    plain = DreamEnv(lane_bundle)
    start, _ = plain.reset(seed=7)
    action = LANE_ACTIONS.sample()
    dream = plain.step(action)[0].astype(int)
    tokenizer = plain.core.world_model.tokenizer
    with torch.no_grad():
        start_decoded = tokenizer.decode(tokenizer.encode(torch.from_numpy(start)[None, None]))
    change = np.abs(dream / 255 - start_decoded[0, 0].clamp(0, 1).numpy()).max(-1)
    threshold = float(np.quantile(change, 0.95))  # about 5% of pixels change, before dilation
    copied = DreamEnv(with_sampling(lane_bundle, tmp_path / "copy", copy_threshold=threshold))
    assert np.array_equal(copied.reset(seed=7)[0], start)
    frame = copied.step(action)[0].astype(int)
    near_dream = np.abs(frame - dream).max(-1) <= 1
    assert (near_dream | (frame == start).all(-1)).all()
    assert near_dream.any() and not near_dream.all()
