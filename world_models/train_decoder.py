"""Fine-tuning a bundle's decoder on its own dreams (`dreamgym train-decoder`).

A dreamed frame's latents are a sample of the dynamics, not the code of a real frame: where the
future is uncertain (the agent's next cell, a minion's next step) they fall between the codes
the decoder learned, and it draws them as if they were certain. Here only the decoder trains,
on windows of the training episodes: `context` real frames in, the rest imagined open-loop from
the recorded actions with the bundle's sampler (fresh noise for every batch), each imagined
frame decoded and scored against the real one with the tokenizer's reconstruction loss. Under
MSE the decoder learns the real frame's mean given the dreamed latents: the posterior mean that
the dynamics' `sample_mean` estimates by drawing M samples per frame, here at no cost per step.

The encoder is frozen, so the latent space, the dynamics and the start contexts stay valid:
the run ends with `bundle/`, the input bundle with the new decoder and nothing else changed.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from data_collection.sequence_view import SequenceView, split_episodes
from world_models.bundle import Bundle, load_bundle, save_bundle
from world_models.metrics import psnr
from world_models.model_io import save_model
from world_models.recon_loss import ReconstructionLoss
from world_models.runs import prepare_run
from world_models.tensorboard_media import log_real_over_dream
from world_models.tokenizer import Tokenizer, video_to_float
from world_models.trainer import Batch, TrainConfig, Trainer
from world_models.world_model import WorldModel

DEFAULT_HOLDOUT = 0.1  # for a bundle whose dynamics did not train on the dataset


def decode_dream(
    tokenizer: Tokenizer,
    dynamics: nn.Module,
    batch: Batch,
    context: int,
    num_steps: int | None,
    recon_rows: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the dream as `tokenizer` draws it, the real frames): each (B, T - context, H, W, C) in
    [0, 1], the dream imagined from the window's first `context` frames and its actions. The
    first `recon_rows` windows are not dreamed: their frames are the tokenizer's
    reconstructions of the real ones."""
    obs, n = batch["obs"], recon_rows
    with torch.no_grad():
        latents = tokenizer.encode(obs)  # (B, T, N, D)
        if n < obs.shape[0]:
            model = WorldModel(tokenizer, dynamics, num_steps)
            rows = {k: v[n:] for k, v in batch.items()}
            dream = model.imagine(obs[n:], rows["action"], rows["labeled"], context).latents
            latents[n:, context:] = dream
        if not tokenizer.decodes_in_context:  # else its decoder reads the context frames too
            latents = latents[:, context:]
    frames = tokenizer.decode(latents)[:, context - obs.shape[1] :]
    return frames, video_to_float(obs[:, context:])


class DreamDecoderObjective(nn.Module):
    """Reconstruction loss of the decoder on open-loop dreams of the frozen dynamics."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        dynamics: nn.Module,
        context: int,
        num_steps: int | None,
        loss: ReconstructionLoss,
        recon_share: float = 0.0,
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer.requires_grad_(False).eval()
        for param in tokenizer.decoder_parameters():
            param.requires_grad_(True)
        self.dynamics = dynamics.requires_grad_(False).eval()
        self.context = context
        self.num_steps = num_steps
        self.loss = loss
        self.recon_share = recon_share

    def train(self, mode: bool = True) -> DreamDecoderObjective:
        super().train(mode)
        self.tokenizer.eval()  # no MAE masking; only the decoder's weights change
        self.dynamics.eval()
        return self

    def dream(self, batch: Batch, recon_rows: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """`decode_dream` with this objective's models and settings."""
        return decode_dream(
            self.tokenizer, self.dynamics, batch, self.context, self.num_steps, recon_rows
        )

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        recon_rows = round(self.recon_share * batch["obs"].shape[0])
        return self.loss(*self.dream(batch, recon_rows))


def show_decoded_dreams(
    objective: DreamDecoderObjective, batch: Batch, writer: SummaryWriter, step: int
) -> None:
    """Log the first window's real frames above its dream as the decoder now draws it."""
    frames, real = objective.dream({k: v[:1] for k, v in batch.items()})
    log_real_over_dream(writer, "decoder", real[0], frames[0], step)


@torch.no_grad()
def dream_psnr(
    objective: DreamDecoderObjective,
    decoders: dict[str, Tokenizer],
    view: SequenceView,
    windows: int,
    seq_len: int,
    seed: int = 0,
) -> dict[str, float]:
    """Mean PSNR over the imagined frames of `windows` windows of `view`: the same dreams
    (the same noise) drawn by each tokenizer of `decoders` (name -> tokenizer)."""
    device = next(objective.dynamics.parameters()).device
    batch = view.sample(windows, seq_len, np.random.default_rng(seed))
    batch = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
    results = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for name, tokenizer in decoders.items():
            torch.manual_seed(seed)
            frames, real = decode_dream(
                tokenizer.to(device),
                objective.dynamics,
                batch,
                objective.context,
                objective.num_steps,
            )
            results[name] = psnr(frames, real).mean().item()
    return results


def _check_settings(bundle: Bundle, train: TrainConfig, context: int, recon_share: float) -> None:
    if not 0 <= recon_share < 1:
        raise ValueError(f"--recon-share must be in [0, 1), got {recon_share}")
    if context < 1:
        raise ValueError(f"--context must be >= 1, got {context}")
    shortest = min(train.seq_len, train.long_seq_len or train.seq_len)
    if shortest <= context:
        raise ValueError(
            f"--seq-len {shortest} leaves no frame to imagine after --context {context}: a "
            f"window is the context plus the imagined frames (e.g. --seq-len {context + 16})"
        )
    if "dynamics" not in bundle.models or "tokenizer" not in bundle.models:
        raise ValueError(f"{bundle.path} is not a tokenizer + dynamics bundle")


def train_decoder(
    bundle_path: str | os.PathLike,
    dataset_id: str,
    run_dir: str | os.PathLike,
    train: TrainConfig | None = None,
    context: int = 4,
    recon_share: float = 0.25,
    perceptual: str = "none",
    data_dir: str | None = None,
    resume: bool = False,
    eval_windows: int = 32,
) -> tuple[Path, dict[str, float]]:
    """Train (or resume) the decoder of a bundle on its dreams of `dataset_id`'s training
    episodes (those the bundle's dynamics trained on, when it trained on this dataset), and on
    the reconstructions of the real frames in `recon_share` of each batch's windows.
    Returns the new bundle's path and the held-out dream PSNR with the old and new decoder."""
    run_dir = Path(run_dir)
    train = train or TrainConfig()
    bundle = load_bundle(bundle_path)
    _check_settings(bundle, train, context, recon_share)
    full = SequenceView(dataset_id, data_dir=data_dir)
    full.require_images("train-decoder")
    bundle.check_spaces(f"dataset {dataset_id}", full.observation_space, full.action_space)
    recorded = bundle.holdout(dataset_id)
    settings = {
        "bundle": str(bundle_path),
        "dataset_id": dataset_id,
        "data_dir": data_dir,
        "holdout": DEFAULT_HOLDOUT if recorded is None else recorded,
        "context": context,
        "recon_share": recon_share,
        "perceptual": perceptual,
        "train": dataclasses.asdict(train),
    }
    settings = prepare_run(run_dir, settings, resume, must_match=("bundle", "dataset_id"))
    train_ids, test_ids = split_episodes(full.num_episodes, settings["holdout"], seed=0)
    train_view = SequenceView(dataset_id, data_dir=data_dir, episodes=train_ids)
    test_view = SequenceView(dataset_id, data_dir=data_dir, episodes=test_ids or train_ids)
    cfg = TrainConfig(**settings["train"])
    for view in (train_view, test_view):  # windows that fit, before training starts
        view.valid_starts(max(cfg.seq_len, cfg.long_seq_len))

    tokenizer = bundle.models["tokenizer"]
    original = copy.deepcopy(tokenizer)
    objective = DreamDecoderObjective(
        tokenizer,
        bundle.models["dynamics"],
        settings["context"],
        bundle.sampling.get("num_steps"),
        ReconstructionLoss(perceptual=settings["perceptual"]),
        settings["recon_share"],
    )
    trainer = Trainer(objective, train_view.sample, cfg, run_dir, visualize=show_decoded_dreams)
    if resume:
        trainer.resume()
    trainer.fit()
    out = run_dir / "bundle"
    if not trainer.is_main:
        return out, {}
    save_model(tokenizer, run_dir / "tokenizer")
    save_bundle(
        out,
        env_id=bundle.config["env_id"],
        observation_space=bundle.observation_space,
        action_space=bundle.action_space,
        models={"tokenizer": tokenizer, "dynamics": bundle.models["dynamics"]},
        contexts={k: v.cpu().numpy() for k, v in bundle.contexts.items()},
        sampling=bundle.sampling,
        horizon=bundle.config["horizon"],
        training=bundle.config.get("training"),
    )
    decoders = {"bundle_decoder": original, "trained_decoder": tokenizer}
    return out, dream_psnr(objective, decoders, test_view, eval_windows, cfg.seq_len)
