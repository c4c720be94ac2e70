"""The masked video model: quantisation, attention masks, objective, sampler, overfitting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from envs.moving_mnist import MovingMNISTEnv
from world_models import masked_video_sampler as sampler
from world_models.masked_video import (
    MaskedVideoConfig,
    MaskedVideoModel,
    dequantise,
    patchify,
    quantise,
    resize_frames,
    unpatchify,
)
from world_models.masked_video_loss import (
    FUTURE,
    JOINT,
    SINGLE,
    mask_tokens,
    masked_video_loss,
    target_frames,
    time_masks,
)
from world_models.model_io import load_model, save_model
from world_models.train_masked_video import moving_mnist_windows


def tiny(**overrides) -> MaskedVideoModel:
    settings = dict(image_size=16, patch_size=4, max_frames=6, dim=32, depth=2, num_heads=2)
    torch.manual_seed(0)
    return MaskedVideoModel(MaskedVideoConfig(**{**settings, **overrides})).eval()


def random_inputs(model: MaskedVideoModel, b: int = 2, t: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    c = model.config
    tokens = torch.randint(
        0, c.levels + 1, (b, t, c.tokens_per_frame, c.pixels_per_token), generator=g
    )
    action = torch.rand(b, t, 2, generator=g) * 2 - 1
    return tokens, action, torch.ones(b, t, dtype=torch.bool)


def test_quantisation_round_trips() -> None:
    levels = torch.arange(16)
    assert torch.equal(quantise(dequantise(levels)), levels)
    assert dequantise(levels).tolist() == [17 * i for i in range(16)]
    pixels = torch.arange(256, dtype=torch.uint8)
    assert (dequantise(quantise(pixels)).int() - pixels.int()).abs().max() <= 8
    frames = torch.randint(0, 16, (2, 3, 8, 8, 1))
    assert torch.equal(unpatchify(patchify(frames, 4), 4, 1), frames)
    assert patchify(frames, 4).shape == (2, 3, 4, 16)
    with pytest.raises(ValueError, match="uint8"):
        quantise(torch.zeros(2, 2))


def test_resize_matches_the_env_at_32_pixels() -> None:
    big, small = MovingMNISTEnv(image_size=64), MovingMNISTEnv(image_size=32)
    obs64, _ = big.reset(seed=3)
    obs32, _ = small.reset(seed=3)
    for _ in range(3):
        obs64 = big.step(np.array([0.3, -0.7]))[0]
        obs32 = small.step(np.array([0.3, -0.7]))[0]
    assert torch.equal(resize_frames(torch.from_numpy(obs64), 32), torch.from_numpy(obs32))
    assert resize_frames(torch.from_numpy(obs32), 64).shape == (64, 64, 1)
    with pytest.raises(ValueError, match="divide"):
        resize_frames(torch.from_numpy(obs32), 24)


def test_three_time_masks_are_what_they_claim() -> None:
    model = tiny()
    tokens, action, labeled = random_inputs(model, b=1, t=4)
    changed = tokens.clone()
    changed[:, 2] = (changed[:, 2] + 1) % model.mask_id  # perturb frame 2 only

    def diff(objective: int) -> torch.Tensor:
        mask = time_masks(torch.tensor([objective]), 4)
        a = model(tokens, action, labeled, mask)[0]
        b = model(changed, action, labeled, mask)[0]
        return (a - b).abs().flatten(2).amax(-1)[0]  # (T,) largest change per frame

    causal, joint, single = diff(FUTURE), diff(JOINT), diff(SINGLE)
    assert causal[:2].max() < 1e-5 and causal[2:].min() > 1e-3  # the future never leaks back
    assert joint.min() > 1e-3  # bidirectional: every frame sees frame 2
    assert single[[0, 1, 3]].max() < 1e-5 and single[2] > 1e-3  # a frame sees only itself
    assert time_masks(torch.tensor([FUTURE, JOINT, SINGLE]), 3).shape == (3, 3, 3)


def test_kv_cache_matches_a_full_causal_pass() -> None:
    model = tiny()
    tokens, action, labeled = random_inputs(model, t=5)
    full = model(tokens, action, labeled, is_causal=True)[0]
    state = sampler.encode(model, tokens[:, :4], action[:, :4], labeled[:, :4])
    last = model(tokens[:, 4:], action[:, 4:], labeled[:, 4:], start=4, past_kv=state.kv)[0]
    torch.testing.assert_close(last, full[:, 4:], atol=1e-5, rtol=1e-4)


def test_masking_touches_only_target_frames() -> None:
    g = torch.Generator().manual_seed(0)
    objectives = torch.tensor([FUTURE] * 64 + [JOINT] * 4)
    targets = target_frames(objectives, 5, g)
    first = targets.float().argmax(1)
    assert (first[:64] >= 1).all() and targets[:64, -1].all() and targets[64:].all()
    tokens = torch.randint(0, 16, (68, 5, 4, 16), generator=g)
    inputs, masked = mask_tokens(tokens, targets, 16, corrupt_max=0.2, generator=g)
    context = ~targets[:, :, None]
    assert torch.equal(inputs[context.expand_as(masked)], tokens[context.expand_as(masked)])
    assert (inputs[masked] == 16).all() and not (inputs[~masked] == 16).any()
    assert (masked.flatten(1).sum(1) >= 1).all()
    counts = masked.sum((1, 2)).float() / (targets.sum(1) * 4)
    assert 0.3 < counts.mean() < 0.9  # E[cos(u pi / 2)] = 2 / pi
    noisy, masked2 = mask_tokens(tokens, targets, 16, 0.0, g, context_corrupt_max=0.5)
    context_changed = (noisy != tokens).any(-1) & context.expand_as(masked2)
    assert context_changed.any() and not (masked2 & context.expand_as(masked2)).any()


@pytest.mark.parametrize("median", [True, False])
def test_sampler_never_changes_a_decoded_token(median: bool) -> None:
    model = tiny(guidance=2.0, num_sampling_steps=6, median_decoding=median)
    tokens, action, labeled = random_inputs(model, t=3)
    tokens = tokens.clamp(max=15)
    state = sampler.encode(model, tokens, action, labeled)
    seen: list[torch.Tensor] = []
    forward = model.forward

    def spy(x, *args, **kwargs):
        if kwargs.get("past_kv") is not None and x.shape[1] == 1:
            seen.append(x[:, 0].clone())
        return forward(x, *args, **kwargs)

    model.forward = spy
    settings = sampler.SamplingSettings.from_model(model)
    out = sampler.decode_frame(model, state, action[:, 0], labeled[:, 0], settings)
    assert len(seen) == 6 and (seen[0] == model.mask_id).all()
    history = [*seen, out]
    for before, after in zip(history, history[1:], strict=False):
        decoded = before != model.mask_id
        assert torch.equal(after[decoded], before[decoded])
    assert (out < model.mask_id).all()
    decoded_per_step = [(h != model.mask_id).all(-1).sum(1) for h in history]
    assert all((b > a).all() for a, b in zip(decoded_per_step, decoded_per_step[1:], strict=False))


def test_rollout_slides_its_window_and_reports_bad_input() -> None:
    model = tiny(max_frames=4, num_sampling_steps=3)
    data = moving_mnist_windows(2, 8, 16, digits="test")
    frames, action = torch.from_numpy(data["obs"]), torch.from_numpy(data["action"])
    labeled = torch.from_numpy(data["labeled"])
    out = sampler.rollout(model, frames, action, labeled, context=3)
    assert out.shape == (2, 5, 16, 16, 1) and out.dtype == torch.uint8
    assert set(torch.unique(out).tolist()) <= {17 * i for i in range(16)}
    with pytest.raises(ValueError, match="context"):
        sampler.rollout(model, frames, action, labeled, context=8)
    with pytest.raises(ValueError, match="expected uint8 frames"):
        model.frames_to_tokens(torch.zeros(2, 32, 32, 1, dtype=torch.uint8))
    tokens, action, labeled = random_inputs(model, t=4)
    with pytest.raises(ValueError, match="max_frames"):
        model(tokens, action, labeled, start=1)
    with pytest.raises(ValueError, match="MASK"):
        model.tokens_to_frames(tokens.clamp(min=16))
    with pytest.raises(ValueError, match="patch_size"):
        MaskedVideoConfig(image_size=30, patch_size=4)
    with pytest.raises(ValueError, match="temperature"):
        sampler.SamplingSettings.from_model(model, temperature=-1.0)
    with pytest.raises(ValueError, match="a whole num_steps"):
        sampler.SamplingSettings.from_model(model, num_steps=2.5)


@pytest.mark.parametrize(
    "bad",
    [
        dict(patch_size=0),
        dict(image_size=0),
        dict(image_size=-32),
        dict(num_heads=0),
        dict(dim=0),
        dict(mlp_hidden_dim=0),
        dict(label_smoothing=1.0),
        dict(label_smoothing=-0.1),
        dict(temperature=-1.0),
        dict(temperature=float("nan")),
        dict(confidence_noise=-2.0),
        dict(guidance=-0.5),
        dict(data_speed=[1.0, 4.0]),  # faster than data_max_speed=3
        dict(data_speed=[1.0]),
    ],
)
def test_config_rejects_bad_settings_before_any_work(bad: dict) -> None:
    with pytest.raises(ValueError, match="bad MaskedVideoConfig"):
        MaskedVideoConfig(**{**dict(image_size=16, patch_size=4, dim=32, num_heads=2), **bad})


def test_forward_rejects_actions_of_another_batch_or_length() -> None:
    model = tiny()
    tokens, action, labeled = random_inputs(model, b=3, t=4)
    for wrong in (action[:1], action[:, :1], action[:2]):
        with pytest.raises(ValueError, match=r"action must be \(B, T, \.\.\.\) = \(3, 4"):
            model(tokens, wrong, labeled)
    assert model(tokens, action, labeled)[0].shape[:2] == (3, 4)


def test_save_and_load_round_trip(tmp_path) -> None:
    model = tiny()
    tokens, action, labeled = random_inputs(model)
    loaded = load_model(save_model(model, tmp_path / "mv"))
    assert isinstance(loaded, MaskedVideoModel)
    torch.testing.assert_close(
        loaded(tokens, action, labeled)[0], model(tokens, action, labeled)[0]
    )


def test_overfits_one_sequence() -> None:
    model = tiny(dim=64, max_frames=4, corrupt_max=0.0, label_smoothing=0.0).train()
    data = moving_mnist_windows(1, 4, 16, digits="train", seed=5)
    frames, action = torch.from_numpy(data["obs"]), torch.from_numpy(data["action"])
    labeled = torch.from_numpy(data["labeled"])
    batch = [t.expand(8, *t.shape[1:]) for t in (frames, action, labeled)]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    for _ in range(200):
        loss, metrics = masked_video_loss(model, *batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # as the Trainer does
        opt.step()
    g = torch.Generator().manual_seed(1)
    model.eval()
    with torch.no_grad():
        accs = [masked_video_loss(model, *batch, generator=g)[1]["acc"] for _ in range(5)]
    assert math.isfinite(loss.item())
    assert np.mean(accs) >= 0.9, accs
