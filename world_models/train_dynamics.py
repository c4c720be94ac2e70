"""Training the dynamics model on a dataset through a frozen tokenizer (`dreamgym train-dynamics`).

At the end the run folder holds `dynamics/` (the model alone) and `bundle/` (tokenizer +
dynamics + real start contexts), ready for `gym.make("Dream-v0", bundle=...)`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from data_collection.sequence_view import SequenceView, split_episodes
from world_models.action_encoder import space_to_spec, spec_to_space
from world_models.bundle import save_bundle, start_contexts
from world_models.checkpoint import latest_checkpoint
from world_models.model_io import build_model, save_model
from world_models.runs import (
    apply_overrides,
    init_source,
    load_initial_weights,
    load_trained,
    prepare_run,
)
from world_models.tensorboard_media import log_real_over_dream
from world_models.tokenizer import Tokenizer, video_to_float
from world_models.trainer import Batch, TrainConfig, Trainer
from world_models.world_model import WorldModel


class DynamicsObjective(nn.Module):
    """Shortcut-forcing loss of the dynamics model on latents of a frozen tokenizer."""

    def __init__(self, tokenizer: Tokenizer, dynamics: nn.Module) -> None:
        super().__init__()
        self.tokenizer = tokenizer.requires_grad_(False).eval()
        self.dynamics = dynamics

    def train(self, mode: bool = True) -> DynamicsObjective:
        super().train(mode)
        self.tokenizer.eval()  # frozen: never in training mode (no MAE masking)
        return self

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            latents = self.tokenizer.encode(batch["obs"])  # (B, T, N, D)
        return self.dynamics.loss(
            latents.float(),
            batch["action"],
            batch["labeled"],
            batch["reward"],
            batch["is_terminal"],
        )


def show_dreams(
    objective: DynamicsObjective, batch: Batch, writer: SummaryWriter, step: int
) -> None:
    """Log a real window above its open-loop dream from the first half as context."""
    obs = batch["obs"][:1]
    context = max(1, obs.shape[1] // 2)
    model = WorldModel(objective.tokenizer, objective.dynamics)
    dream = model.imagine(obs, batch["action"][:1], batch["labeled"][:1], context).frame[0]
    log_real_over_dream(writer, "dynamics", video_to_float(obs[0, context:]), dream, step)


def default_dynamics_spec(
    tokenizer: Tokenizer,
    view: SequenceView,
    overrides: dict,
    base: Any | None = None,
) -> dict:
    """A dynamics model spec sized for the tokenizer's latents and the dataset's actions (or
    the config `base`, the `--init-from` model's); then `overrides`."""
    from world_models.dynamics import DynamicsConfig

    if base is not None:
        config = base
    else:
        config = DynamicsConfig(
            num_latents=tokenizer.num_latents,
            latent_dim=tokenizer.latent_dim,
            action_spec=space_to_spec(view.action_space),
        )
    config = apply_overrides(config, overrides)
    return {"kind": "dynamics", "config": dataclasses.asdict(config)}


def _check_fits(config: Any, tokenizer: Tokenizer, view: SequenceView) -> None:
    """Refuse a dynamics config (e.g. an --init-from model's) that does not fit the tokenizer's
    latents or the dataset's actions, and a tokenizer that does not read the dataset's frames,
    before training starts."""
    frame = (tokenizer.config.image_size, tokenizer.config.image_size, tokenizer.config.channels)
    observed = tuple(getattr(view.observation_space, "shape", None) or ())
    if observed != frame:
        raise ValueError(
            f"the tokenizer reads {frame} frames, but {view.dataset_id} observes {observed}: "
            f"give --tokenizer one trained on this dataset (dreamgym train-tokenizer --dataset "
            f"{view.dataset_id})"
        )
    latents = (tokenizer.num_latents, tokenizer.latent_dim)
    if (config.num_latents, config.latent_dim) != latents:
        raise ValueError(
            f"the dynamics model reads {config.num_latents} latents x {config.latent_dim}, but "
            f"the tokenizer writes {latents[0]} x {latents[1]}: give --init-from a model "
            "trained on this tokenizer, or leave the latent settings to the tokenizer"
        )
    takes = spec_to_space(config.action_spec)
    if takes != spec_to_space(space_to_spec(view.action_space)):
        raise ValueError(
            f"the dynamics model takes actions in {takes}, but {view.dataset_id} acts in "
            f"{view.action_space}: give --init-from a model of this env"
        )


def train_dynamics(
    dataset_id: str,
    tokenizer_path: str | os.PathLike,
    run_dir: str | os.PathLike,
    train: TrainConfig | None = None,
    model_overrides: dict[str, Any] | None = None,
    data_dir: str | None = None,
    holdout: float = 0.1,
    context_length: int = 1,
    horizon: int = 200,
    init_from: str | os.PathLike | None = None,
    resume: bool = False,
) -> Path:
    """Train (or resume) the dynamics model; returns the path of the exported bundle.

    tokenizer_path, init_from: model, bundle or run folders; init_from's dynamics settings
    (with `model_overrides` on top) and weights start this run, with a fresh optimizer and
    schedule.
    """
    run_dir = Path(run_dir)
    tokenizer = load_trained(tokenizer_path, "tokenizer")
    full = SequenceView(dataset_id, data_dir=data_dir)
    full.require_images("the dynamics model")
    source = None if init_from is None else init_source(init_from, "dynamics", "dynamics")
    settings = {
        "dataset_id": dataset_id,
        "data_dir": data_dir,
        "tokenizer": str(tokenizer_path),
        "holdout": holdout,
        "context_length": context_length,
        "horizon": horizon,
        "init_from": None if init_from is None else str(init_from),
        "train": dataclasses.asdict(train or TrainConfig()),
        "model": default_dynamics_spec(
            tokenizer, full, model_overrides or {}, source.config if source else None
        ),
    }
    settings = prepare_run(run_dir, settings, resume, must_match=("dataset_id",))
    train_ids, _ = split_episodes(full.num_episodes, settings["holdout"], seed=0)
    train_view = SequenceView(dataset_id, data_dir=data_dir, episodes=train_ids)

    # the start contexts, drawn now so a length no episode has fails before training
    contexts = start_contexts(train_view, count=64, length=settings["context_length"])
    torch.manual_seed(settings["train"]["seed"])  # the initial weights too follow the seed
    dynamics = build_model(settings["model"])
    _check_fits(dynamics.config, tokenizer, train_view)
    train_cfg = TrainConfig(**settings["train"])
    longest = max(train_cfg.seq_len, train_cfg.long_seq_len)
    if dynamics.config.context_length >= longest:
        warnings.warn(
            f"context_length={dynamics.config.context_length} lets a dreamed frame attend "
            f"{dynamics.config.context_length} frames back, but the longest training window "
            f"({longest} frames) shows at most {longest - 1}: set --set "
            f"context_length={longest - 1}, or train with --long-seq-len",
            stacklevel=2,
        )
    if settings.get("init_from") and latest_checkpoint(run_dir) is None:
        load_initial_weights(dynamics, settings["init_from"], "dynamics", source)
    objective = DynamicsObjective(tokenizer, dynamics)
    trainer = Trainer(
        objective,
        train_view.sample,
        train_cfg,
        run_dir,
        visualize=show_dreams,
    )
    if resume:
        trainer.resume()
    trainer.fit()
    bundle = run_dir / "bundle"
    if trainer.is_main:
        save_model(dynamics, run_dir / "dynamics")
        save_bundle(
            bundle,
            env_id=full.env_id,
            observation_space=full.observation_space,
            action_space=full.action_space,
            models={"tokenizer": tokenizer, "dynamics": dynamics},
            contexts=contexts,
            sampling={"num_steps": dynamics.config.num_sampling_steps},
            horizon=settings["horizon"],
            training={"dataset_id": dataset_id, "holdout": settings["holdout"]},
        )
    return bundle
