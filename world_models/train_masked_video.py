"""Training the masked video model (`dreamgym train-dynamics --kind masked-video`).

Data: `dataset="generated"` draws fresh Moving MNIST sequences for every batch from
`envs.moving_mnist.generate_sequences` on the TRAIN digits (the benchmark uses the disjoint test
digits), at the model's image size, so the model never sees a sequence twice; any other value is
a Minari dataset id read through `SequenceView` (frames resized to the model's size).
Alignment as in `data_collection.sequence_view`: action[t] led to frame t.

At the end the run folder holds `masked_video/` (the model alone) and `bundle/`: config.json
{"format": "dreamgym-bundle", ..., "models": {"masked_video": spec}, "sampling": {...}},
`masked_video.safetensors` and start contexts. Its observation space is that of the real env:
the dataset's, or for generated data `MovingMNIST-v0`'s (64, 64, 1); the dream env resizes
frames to and from the model's size (`world_models.masked_video_world_model`). For generated
data the model config records the motion (`data_max_speed`, `data_speed` from `max_speed`,
`speed`), so the benchmark draws its test sequences alike.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from envs.moving_mnist import CANVAS
from world_models.bundle import save_bundle, start_contexts
from world_models.checkpoint import latest_checkpoint
from world_models.masked_video import MaskedVideoConfig, MaskedVideoModel, resize_frames
from world_models.masked_video_sampler import SamplingSettings, rollout
from world_models.model_io import build_model, save_model
from world_models.runs import apply_overrides, init_source, load_initial_weights, prepare_run
from world_models.tensorboard_media import log_real_over_dream
from world_models.trainer import Batch, TrainConfig, Trainer

GENERATED = "generated"
MOVING_MNIST_ID = "MovingMNIST-v0"
MOTION = ("data_max_speed", "data_speed")  # model config fields recording --max-speed, --speed


def moving_mnist_windows(
    num: int,
    length: int,
    image_size: int,
    digits: str = "train",
    seed: int = 0,
    max_speed: float = 3.0,
    speed: tuple[float, float] = (1.0, 2.0),
) -> dict[str, np.ndarray]:
    """Moving MNIST windows in the dataset alignment: obs (num, length, S, S, 1) uint8, action
    (num, length, 2) float32 (action[t] led to obs[t]), labeled (num, length) bool (False at 0)."""
    from envs.moving_mnist import generate_sequences

    frames, actions = generate_sequences(num, length, digits, seed, max_speed, tuple(speed))
    obs = resize_frames(torch.from_numpy(frames), image_size).numpy()
    action = np.concatenate([np.zeros_like(actions[:, :1]), actions], axis=1)
    labeled = np.ones((num, length), dtype=bool)
    labeled[:, 0] = False
    return {"obs": obs, "action": action, "labeled": labeled}


class GeneratedMovingMNIST:
    """A `Trainer` sampler: fresh train-digit windows for every batch (seeded by the loop's rng).
    Each window is the tail of a sequence one frame longer, so its first action is known."""

    def __init__(
        self, image_size: int, max_speed: float = 3.0, speed: tuple[float, float] = (1.0, 2.0)
    ) -> None:
        self.image_size = image_size
        self.max_speed = max_speed
        self.speed = tuple(speed)

    def __call__(
        self, batch_size: int, seq_len: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        seed = int(rng.integers(2**63 - 1))
        out = moving_mnist_windows(
            batch_size, seq_len + 1, self.image_size, "train", seed, self.max_speed, self.speed
        )
        return {k: v[:, 1:] for k, v in out.items()}


class MaskedVideoObjective(nn.Module):
    """The masked video loss on a batch (frames resized to the model's size when needed)."""

    def __init__(self, model: MaskedVideoModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        frames = resize_frames(batch["obs"], self.model.config.image_size)
        return self.model.loss(frames, batch["action"], batch["labeled"])


def show_rollout(
    objective: MaskedVideoObjective, batch: Batch, writer: SummaryWriter, step: int
) -> None:
    """Log the second half of a real window above its open-loop prediction (8 decoding steps)."""
    model = objective.model
    frames = resize_frames(batch["obs"][:1], model.config.image_size)
    context = max(1, frames.shape[1] // 2)
    settings = SamplingSettings.from_model(model, num_steps=8)
    dream = rollout(model, frames, batch["action"][:1], batch["labeled"][:1], context, settings)
    log_real_over_dream(writer, "masked_video", frames[0, context:], dream[0], step)


def default_masked_video_spec(
    action_space: gym.Space,
    overrides: dict[str, Any],
    base: MaskedVideoConfig | None = None,
) -> dict:
    """A masked video model spec for `action_space` (or the config `base`, the `--init-from`
    model's), with config `overrides`."""
    from world_models.action_encoder import space_to_spec

    config = base or MaskedVideoConfig(action_spec=space_to_spec(action_space))
    config = apply_overrides(config, overrides)
    return {"kind": "masked-video", "config": dataclasses.asdict(config)}


def _contexts(view: Any, settings: dict) -> dict[str, np.ndarray]:
    """64 start contexts at the real env's size: from the dataset, or generated (64x64)."""
    length = settings["context_length"]
    if view is None:
        data = settings["data"]
        return moving_mnist_windows(
            64, length, CANVAS, "train", 1, data["max_speed"], data["speed"]
        )
    return start_contexts(view, count=64, length=length)


def _record_motion(settings: dict[str, Any]) -> None:
    """Write the generated data's motion into the model config (the benchmark's record)."""
    if settings["dataset"] == GENERATED:
        data = settings["data"]
        motion = dict(zip(MOTION, (data["max_speed"], list(data["speed"])), strict=True))
        settings["model"]["config"].update(motion)


def _check_run(settings: dict[str, Any], obs_space: gym.Space) -> MaskedVideoConfig:
    """The run's model config, once its windows and the data's frames are known to fit it."""
    config = MaskedVideoConfig(**settings["model"]["config"])
    train, max_frames = settings["train"], config.max_frames
    longest = max(train["seq_len"], train["long_seq_len"])
    if train["seq_len"] < 2:
        raise ValueError(
            f"--seq-len {train['seq_len']}: windows need >= 2 frames (a context and a target)"
        )
    if longest > max_frames:
        raise ValueError(
            f"--seq-len / --long-seq-len {longest} exceeds the model's max_frames={max_frames}; "
            "lower it or pass --set max_frames=..."
        )
    shape = tuple(getattr(obs_space, "shape", None) or ())
    size, channels = config.image_size, config.channels
    if len(shape) != 3 or shape[0] != shape[1]:
        raise ValueError(f"the masked video model needs square (S, S, C) frames, not {obs_space}")
    if shape[2] != channels:
        raise ValueError(
            f"the frames have {shape[2]} channels, the model {channels}: pass --set "
            f"channels={shape[2]}"
        )
    if shape[0] % size and size % shape[0]:
        raise ValueError(
            f"{shape[0]}x{shape[0]} frames cannot be resized to the model's {size}x{size} (one "
            "size must divide the other): pass --set image_size=... (a multiple of "
            f"patch_size={config.patch_size})"
        )
    return config


def _warn_short_windows(train: dict[str, Any], config: MaskedVideoConfig) -> None:
    """Warn when sampling would use temporal positions that no training window reaches."""
    longest = max(train["seq_len"], train["long_seq_len"])
    if config.max_frames > longest:
        warnings.warn(
            f"max_frames={config.max_frames}: the sampler attends over {config.max_frames} "
            f"frames, but the longest training window has {longest}, so temporal positions "
            f">= {longest} are never trained: pass --set max_frames={longest}, or train with "
            f"--long-seq-len {config.max_frames}",
            stacklevel=3,
        )


def train_masked_video(
    dataset: str,
    run_dir: str | os.PathLike,
    train: TrainConfig | None = None,
    model_overrides: dict[str, Any] | None = None,
    data_dir: str | None = None,
    holdout: float = 0.1,
    context_length: int = 10,
    horizon: int = 200,
    max_speed: float = 3.0,
    speed: tuple[float, float] = (1.0, 2.0),
    init_from: str | os.PathLike | None = None,
    resume: bool = False,
) -> Path:
    """Train (or resume) the masked video model; returns the path of the exported bundle.

    dataset: "generated" (fresh Moving MNIST train-digit sequences; `max_speed` and `speed` as
    in `generate_sequences`) or a Minari dataset id (held-out episodes by `holdout`).
    init_from: a masked video model, bundle or finished run folder whose weights start this
    run (same architecture; training settings such as the objective mix may differ), with a
    fresh optimizer and schedule.
    """
    run_dir = Path(run_dir)
    if dataset == GENERATED:
        env_id, action_space = MOVING_MNIST_ID, gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        obs_space = gym.spaces.Box(0, 255, (CANVAS, CANVAS, 1), np.uint8)
        full = None
        if set(MOTION) & set(model_overrides or {}):
            raise ValueError(f"{list(MOTION)} record --max-speed / --speed: pass those instead")
    else:
        from data_collection.sequence_view import SequenceView

        full = SequenceView(dataset, data_dir=data_dir)
        full.require_images("the masked video model")
        env_id, action_space = full.env_id, full.action_space
        obs_space = full.observation_space
    source = None if init_from is None else init_source(init_from, "masked_video", "masked-video")
    settings = {
        "dataset": dataset,
        "data_dir": data_dir,
        "holdout": holdout,
        "context_length": context_length,
        "horizon": horizon,
        "data": {"max_speed": max_speed, "speed": list(speed)},
        "init_from": None if init_from is None else str(init_from),
        "train": dataclasses.asdict(train or TrainConfig()),
        "model": default_masked_video_spec(
            action_space, model_overrides or {}, source.config if source else None
        ),
    }
    _record_motion(settings)
    _check_run(settings, obs_space)
    settings = prepare_run(run_dir, settings, resume, must_match=("dataset",))
    _record_motion(settings)  # runs recorded before the motion was
    _warn_short_windows(settings["train"], _check_run(settings, obs_space))
    torch.manual_seed(settings["train"]["seed"])  # the initial weights too follow the seed
    model = build_model(settings["model"])
    config = model.config
    if settings["init_from"] and latest_checkpoint(run_dir) is None:
        load_initial_weights(model, settings["init_from"], "masked_video", source)
    view = None
    if full is None:
        data = settings["data"]
        sampler = GeneratedMovingMNIST(config.image_size, data["max_speed"], tuple(data["speed"]))
    else:
        from data_collection.sequence_view import SequenceView, split_episodes

        train_ids, _ = split_episodes(full.num_episodes, settings["holdout"], seed=0)
        view = SequenceView(dataset, data_dir=data_dir, episodes=train_ids)
        sampler = view.sample
    contexts = _contexts(view, settings)  # now: a length no episode has fails before training
    trainer = Trainer(
        MaskedVideoObjective(model),
        sampler,
        TrainConfig(**settings["train"]),
        run_dir,
        visualize=show_rollout,
    )
    if resume:
        trainer.resume()
    trainer.fit()
    bundle = run_dir / "bundle"
    if trainer.is_main:
        save_model(model, run_dir / "masked_video")
        sampling = dataclasses.asdict(SamplingSettings.from_model(model))
        save_bundle(
            bundle,
            env_id=env_id,
            observation_space=obs_space,
            action_space=action_space,
            models={"masked_video": model},
            contexts=contexts,
            sampling=sampling,
            horizon=settings["horizon"],
        )
    return bundle
