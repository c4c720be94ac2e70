"""Behaviour cloning of a diffusion policy on a Minari dataset, with the shared `Trainer`.

Training pairs come from `SequenceView` windows. With Dreamer's alignment `action[t]` led TO
`obs[t]`, so the chunk of actions taken at `obs[t]` is `action[t + 1 : t + 1 + H]`. A window of
m <= H + 1 steps starting at `obs[t]` gives m - 1 actions; the rest of the chunk is padding
(always masked, never in the loss). Most windows are full (H + 1 steps); the others have a
random shorter length, so states near an episode's end, where no full window fits, are
trained on too. Unlabeled actions are padding as well.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agents.diffusion_policy import DiffusionPolicy, DiffusionPolicyConfig, save_policy
from agents.obs_encoders import obs_spec
from data_collection.sequence_view import SequenceView, map_obs
from world_models.action_encoder import space_to_spec
from world_models.runs import apply_overrides, prepare_run
from world_models.trainer import TrainConfig, Trainer

FULL_WINDOW_PROB = 0.5


class ChunkSampler:
    """`sampler(batch_size, seq_len, rng)` for the Trainer: obs (B, *obs_shape) uint8 (for
    Dict spaces a dict of arrays), tokens (B, L) int64, valid (B, L) bool (`seq_len` is
    ignored: windows are H + 1 long)."""

    def __init__(self, view: SequenceView, policy: DiffusionPolicy) -> None:
        self.view = view
        self.tokenizer = policy.tokenizer
        self.horizon = policy.config.horizon
        self.max_window = next((m for m in range(self.horizon + 1, 1, -1) if _fits(view, m)), 0)
        if self.max_window < 2:
            raise ValueError(f"dataset {view.dataset_id!r} has no episode with an action")

    def __call__(self, batch_size: int, seq_len: int, rng: np.random.Generator) -> dict:
        h, dims = self.horizon, self.tokenizer.dims
        full = rng.random(batch_size) < FULL_WINDOW_PROB
        lengths = np.where(full, self.max_window, rng.integers(2, self.max_window + 1, batch_size))
        obs_parts = []
        tokens = np.zeros((batch_size, h, dims), np.int64)
        valid = np.zeros((batch_size, h, dims), bool)
        for m in np.unique(lengths):
            rows = np.flatnonzero(lengths == m)
            win = self.view.sample(len(rows), int(m), rng)
            obs_parts.append((rows, map_obs(win["obs"], lambda a: a[:, 0])))
            tokens[rows, : m - 1] = self.tokenizer.encode(win["action"][:, 1:])
            valid[rows, : m - 1] = win["labeled"][:, 1:, None]
        tokens[~valid] = 0
        return {
            "obs": _in_row_order(obs_parts),
            "tokens": tokens.reshape(batch_size, -1),
            "valid": valid.reshape(batch_size, -1),
        }


def _in_row_order(parts: list[tuple[np.ndarray, Any]]) -> Any:
    """[(rows, obs of those rows)], rows partitioning 0..B-1 -> obs (B, ...) in row order;
    obs is an array or (Dict spaces) a dict of arrays."""
    order = np.argsort(np.concatenate([rows for rows, _ in parts]))
    first = parts[0][1]
    if isinstance(first, dict):
        return {k: np.concatenate([obs[k] for _, obs in parts])[order] for k in first}
    return np.concatenate([obs for _, obs in parts])[order]


def _fits(view: SequenceView, seq_len: int) -> bool:
    try:
        view.valid_starts(seq_len)
    except ValueError:
        return False
    return True


def mean_frame(view: SequenceView, max_episodes: int = 100) -> np.ndarray:
    """The mean observation (H, W, C) of up to `max_episodes` evenly spaced episodes."""
    picks = np.unique(np.linspace(0, view.num_episodes - 1, max_episodes).round().astype(int))
    total, count = 0.0, 0
    for i in picks:
        obs = view.episode(int(i))["obs"]
        total = total + obs.sum(0, dtype=np.float64)
        count += len(obs)
    return (total / count).astype(np.float32)


class BCObjective(nn.Module):
    """The Trainer's objective: the MDLM loss of the policy on expert chunks."""

    def __init__(self, policy: DiffusionPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        return self.policy.loss(batch["obs"], batch["tokens"], batch["valid"])


def policy_config_for(view: SequenceView, **overrides: Any) -> DiffusionPolicyConfig:
    """A policy config matching a dataset's observation and action spaces."""
    config = DiffusionPolicyConfig(
        obs_spec=obs_spec(view.observation_space), action_spec=space_to_spec(view.action_space)
    )
    return apply_overrides(config, overrides)


def train_bc(
    dataset_id: str,
    run_dir: str | os.PathLike,
    cfg: TrainConfig,
    data_dir: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    env_id: str | None = None,
) -> tuple[DiffusionPolicy, Path]:
    """Train a diffusion policy by BC; saves it to `run_dir/policy/` -> (policy, that folder).

    The run's settings go to `run_dir/run.json`; `resume` continues with those (a larger
    `cfg.steps` extends the run). `env_id`, if given, must be the dataset's env."""
    view = SequenceView(dataset_id, data_dir)
    if env_id is not None and env_id != view.env_id:
        raise ValueError(
            f"dataset {dataset_id} was recorded in {view.env_id}, not {env_id}; pass "
            f"--env {view.env_id}"
        )
    settings = {
        "dataset_id": dataset_id,
        "train": dataclasses.asdict(cfg),
        "policy": dataclasses.asdict(policy_config_for(view, **(overrides or {}))),
    }
    settings = prepare_run(run_dir, settings, resume, must_match=("dataset_id",))
    cfg = TrainConfig(**settings["train"])
    torch.manual_seed(cfg.seed)  # the initial weights too follow the seed
    policy = DiffusionPolicy(DiffusionPolicyConfig.from_saved(settings["policy"]))
    if hasattr(policy.encoder, "set_mean"):
        policy.encoder.set_mean(mean_frame(view))
    trainer = Trainer(BCObjective(policy), ChunkSampler(view, policy), cfg, run_dir)
    if resume and not trainer.resume():
        raise FileNotFoundError(f"--resume: no checkpoint in {run_dir}")
    trainer.fit()
    policy = policy.cpu().eval()
    return policy, save_policy(policy, Path(run_dir) / "policy")
