"""Fine-tuning a bundle's decoder on its own dreams (`dreamgym train-decoder`).

A dreamed frame's latents are a sample of the dynamics, not the code of a real frame: where the
future is uncertain (the agent's next cell, a minion's next step) they fall between the codes
the decoder learned, and it draws them as if they were certain. Here only the decoder trains,
on a pool of dreams made once before training (`DreamPool`): random windows of the training
episodes, `context` real frames in, the rest imagined open-loop from the recorded actions with
the bundle's sampler. Each imagined frame is decoded and scored against the real one with the
tokenizer's reconstruction loss; in `recon_share` of each batch's windows the decoder reads the
real frames' own latents instead, which keeps its reconstructions (and one-step dreams) sharp.
Under MSE the decoder learns the real frame's mean given the dreamed latents: the posterior
mean that the dynamics' `sample_mean` estimates by drawing M samples per frame, here at no cost
per dream step.

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
from tqdm import tqdm

from data_collection.sequence_view import SequenceView, split_episodes
from world_models.bundle import Bundle, load_bundle, save_bundle
from world_models.metrics import psnr
from world_models.model_io import save_model
from world_models.recon_loss import ReconstructionLoss
from world_models.runs import prepare_run
from world_models.tensorboard_media import log_real_over_dream
from world_models.tokenizer import Tokenizer, video_to_float
from world_models.trainer import Batch, TrainConfig, Trainer, init_distributed
from world_models.world_model import WorldModel

DEFAULT_HOLDOUT = 0.1  # for a bundle whose dynamics did not train on the dataset


def decode_windows(tokenizer: Tokenizer, latents: torch.Tensor, context: int) -> torch.Tensor:
    """Window latents (B, T, N, D) -> the frames after the context (B, T - context, H, W, C)
    in [0, 1]; a decoder that reads earlier frames reads the context's too."""
    length = latents.shape[1]
    if not tokenizer.decodes_in_context:
        latents = latents[:, context:]
    return tokenizer.decode(latents)[:, context - length :]


@torch.no_grad()
def _window_latents(
    model: WorldModel, batch: Batch, context: int, generator: torch.Generator
) -> torch.Tensor:
    """(B, T, N, D): the context frames' own latents, then the ones the dynamics imagines for
    the rest of each window from its recorded actions."""
    obs, action, labeled = batch["obs"], batch["action"], batch["labeled"]
    state, latents = model.start(
        obs[:, :context], action[:, :context], labeled[:, :context], generator
    )
    frames = [latents]
    for t in range(context, obs.shape[1]):
        state, dream, _, _ = model.step(state, action[:, t], generator, labeled[:, t])
        frames.append(dream[:, None])
    return torch.cat(frames, 1)


class DreamPool:
    """Open-loop dreams of `windows` random windows of `view`, made once: each window's real
    frames (uint8) beside the latents the decoder reads for them, the context frames' own and
    then the dream's. `sample` is a `Trainer` sampler (every window has the pool's length)."""

    def __init__(
        self,
        model: WorldModel,
        view: SequenceView,
        windows: int,
        seq_len: int,
        context: int,
        seed: int,
        progress: bool = True,
        chunk: int = 64,
    ) -> None:
        device = next(model.parameters()).device
        rng = np.random.default_rng(seed)
        generator = torch.Generator(device).manual_seed(seed)
        obs, latents = [], []
        bar = tqdm(total=windows, desc="dreams", unit="window", disable=not progress)
        for start in range(0, windows, chunk):
            batch = view.sample(min(chunk, windows - start), seq_len, rng)
            t = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
            latents.append(_window_latents(model, t, context, generator).float().cpu().numpy())
            obs.append(batch["obs"])
            bar.update(len(batch["obs"]))
        bar.close()
        self.obs = np.concatenate(obs)  # (windows, T, H, W, C) uint8
        self.latents = np.concatenate(latents)  # (windows, T, N, D)

    def sample(self, batch_size: int, seq_len: int, rng: np.random.Generator) -> dict:
        """`batch_size` random windows of the pool: obs and latents."""
        rows = rng.integers(0, len(self.obs), batch_size)
        return {"obs": self.obs[rows], "latents": self.latents[rows]}


class DreamDecoderObjective(nn.Module):
    """Reconstruction loss of the decoder on pooled dreams (the encoder frozen)."""

    def __init__(
        self, tokenizer: Tokenizer, context: int, loss: ReconstructionLoss, recon_share: float
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer.requires_grad_(False).eval()
        for param in tokenizer.decoder_parameters():
            param.requires_grad_(True)
        self.context = context
        self.loss = loss
        self.recon_share = recon_share

    def train(self, mode: bool = True) -> DreamDecoderObjective:
        super().train(mode)
        self.tokenizer.eval()  # no MAE masking; only the decoder's weights change
        return self

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        obs, latents, c = batch["obs"], batch["latents"].clone(), self.context
        n = round(self.recon_share * obs.shape[0])  # windows decoded from their own latents
        if n:
            with torch.no_grad():
                latents[:n, c:] = self.tokenizer.encode(obs[:n, c:])
        frames = decode_windows(self.tokenizer, latents, c)
        return self.loss(frames, video_to_float(obs[:, c:]))


def show_decoded_dreams(
    objective: DreamDecoderObjective, batch: Batch, writer: SummaryWriter, step: int
) -> None:
    """Log the first window's real frames above its dream as the decoder now draws it."""
    c = objective.context
    frames = decode_windows(objective.tokenizer, batch["latents"][:1], c)
    log_real_over_dream(writer, "decoder", batch["obs"][0, c:], frames[0], step)


@torch.no_grad()
def dream_psnr(decoders: dict[str, Tokenizer], pool: DreamPool, context: int) -> dict[str, float]:
    """Mean PSNR over the imagined frames of the pool's dreams, as each tokenizer of `decoders`
    (name -> tokenizer with the pool's encoder) draws them."""
    real = video_to_float(torch.from_numpy(pool.obs[:, context:]))
    results = {}
    for name, tokenizer in decoders.items():
        device = next(tokenizer.parameters()).device
        latents = torch.from_numpy(pool.latents).to(device)
        frames = decode_windows(tokenizer.eval(), latents, context).float().cpu()
        results[name] = psnr(frames, real).mean().item()
    return results


def _check_settings(bundle: Bundle, train: TrainConfig, context: int, recon_share: float) -> None:
    if not 0 <= recon_share < 1:
        raise ValueError(f"--recon-share must be in [0, 1), got {recon_share}")
    if context < 1:
        raise ValueError(f"--context must be >= 1, got {context}")
    if train.long_seq_len:
        raise ValueError("train-decoder's windows all have --seq-len frames: drop --long-seq-len")
    if train.seq_len <= context:
        raise ValueError(
            f"--seq-len {train.seq_len} leaves no frame to imagine after --context {context}: "
            f"a window is the context plus the imagined frames (e.g. --seq-len {context + 16})"
        )
    if "dynamics" not in bundle.models or "tokenizer" not in bundle.models:
        raise ValueError(f"{bundle.path} is not a tokenizer + dynamics bundle")


def train_decoder(
    bundle_path: str | os.PathLike,
    dataset_id: str,
    run_dir: str | os.PathLike,
    train: TrainConfig | None = None,
    context: int = 4,
    dream_windows: int = 2048,
    recon_share: float = 0.25,
    perceptual: str = "none",
    data_dir: str | None = None,
    resume: bool = False,
    eval_windows: int = 64,
) -> tuple[Path, dict[str, float]]:
    """Train (or resume) the decoder of a bundle on `dream_windows` dreams of `dataset_id`'s
    training episodes (those the bundle's dynamics trained on, when it trained on this
    dataset). Returns the new bundle's path and the mean PSNR of `eval_windows` held-out
    dreams as the bundle's decoder and the trained one draw them."""
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
        "dream_windows": dream_windows,
        "recon_share": recon_share,
        "perceptual": perceptual,
        "train": dataclasses.asdict(train),
    }
    settings = prepare_run(run_dir, settings, resume, must_match=("bundle", "dataset_id"))
    cfg, context = TrainConfig(**settings["train"]), settings["context"]  # a resumed run's own
    train_ids, test_ids = split_episodes(full.num_episodes, settings["holdout"], seed=0)
    train_view = SequenceView(dataset_id, data_dir=data_dir, episodes=train_ids)
    test_view = SequenceView(dataset_id, data_dir=data_dir, episodes=test_ids or train_ids)
    for view in (train_view, test_view):  # windows that fit, before any dreaming
        view.valid_starts(cfg.seq_len)

    rank, _, device = init_distributed()
    tokenizer, dynamics = bundle.models["tokenizer"].to(device), bundle.models["dynamics"]
    model = WorldModel(tokenizer, dynamics.to(device), bundle.sampling.get("num_steps"))
    original = copy.deepcopy(tokenizer)
    pool = DreamPool(
        model, train_view, settings["dream_windows"], cfg.seq_len, context, cfg.seed + rank
    )
    objective = DreamDecoderObjective(
        tokenizer,
        context,
        ReconstructionLoss(perceptual=settings["perceptual"]),
        settings["recon_share"],
    )
    trainer = Trainer(objective, pool.sample, cfg, run_dir, visualize=show_decoded_dreams)
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
        models={"tokenizer": tokenizer, "dynamics": dynamics},
        contexts={k: v.cpu().numpy() for k, v in bundle.contexts.items()},
        sampling=bundle.sampling,
        horizon=bundle.config["horizon"],
        training=bundle.config.get("training"),
    )
    held_out = DreamPool(model, test_view, eval_windows, cfg.seq_len, context, seed=1234)
    decoders = {"bundle_decoder": original, "trained_decoder": tokenizer}
    return out, dream_psnr(decoders, held_out, context)
