"""Training a video tokenizer on a Minari dataset (`dreamgym train-tokenizer`)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from data_collection.sequence_view import SequenceView, split_episodes
from world_models.model_io import build_model, save_model
from world_models.recon_loss import ReconstructionLoss
from world_models.runs import apply_overrides, prepare_run
from world_models.tokenizer import Tokenizer, video_to_float
from world_models.trainer import Batch, TrainConfig, Trainer

TOKENIZER_KINDS = ("cnn", "transformer")


class TokenizerObjective(nn.Module):
    """Reconstruction loss of a tokenizer: MSE + w * perceptual, each over its running RMS."""

    def __init__(self, tokenizer: Tokenizer, loss: ReconstructionLoss) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.loss = loss

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        video = batch["obs"]  # (B, T, H, W, C) uint8
        return self.loss(self.tokenizer(video), video_to_float(video))


def show_reconstructions(
    objective: TokenizerObjective, batch: Batch, writer: SummaryWriter, step: int
) -> None:
    """Log real frames above their reconstructions (first sequence of the batch)."""
    video = batch["obs"][:1]
    recon = objective.tokenizer(video)[0]  # (T, H, W, C)
    grid = torch.cat([video_to_float(video[0]), recon.float()], dim=1)  # (T, 2H, W, C)
    writer.add_images("tokenizer/real_over_recon", grid.clamp(0, 1), step, dataformats="NHWC")


def default_model_spec(
    kind: str, observation_space: gym.Space, overrides: dict[str, Any], train: TrainConfig
) -> dict[str, Any]:
    """The model spec for a tokenizer of `kind` sized for the observed frames. A transformer
    tokenizer's decoder reads at most T - 1 past frames in a dream, as the last frame of its
    longest training windows (T frames) did."""
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; choose one of {TOKENIZER_KINDS}")
    shape = observation_space.shape or ()
    if len(shape) != 3 or shape[0] != shape[1]:
        raise ValueError(
            f"tokenizers need square (H, W, C) image observations, got {observation_space}"
        )
    if kind == "cnn":
        from world_models.tokenizer_cnn import CNNTokenizerConfig as Config

        config = Config(image_size=shape[0], channels=shape[2])
    else:
        from world_models.tokenizer_transformer import TransformerTokenizerConfig as Config

        longest = max(train.seq_len, train.long_seq_len)
        config = Config(image_size=shape[0], channels=shape[2], context_length=max(longest - 1, 1))
    config = apply_overrides(config, overrides)
    return {"kind": f"{kind}-tokenizer", "config": dataclasses.asdict(config)}


@torch.no_grad()
def evaluate_tokenizer(
    tokenizer: Tokenizer, view: SequenceView, batches: int = 8
) -> dict[str, float]:
    """Held-out reconstruction MSE and PSNR (pixels in [0, 1]) over a few fixed windows."""
    from world_models.metrics import psnr

    tokenizer.eval()
    device = next(tokenizer.parameters()).device
    rng = np.random.default_rng(1234)
    mses, psnrs = [], []
    for _ in range(batches):
        video = torch.from_numpy(view.sample(8, 4, rng)["obs"]).to(device)
        target = video_to_float(video)
        recon = tokenizer(video).float()
        mses.append(((recon - target) ** 2).mean().item())
        psnrs.append(psnr(recon, target).mean().item())
    return {"mse": float(np.mean(mses)), "psnr": float(np.mean(psnrs))}


def train_tokenizer(
    dataset_id: str,
    run_dir: str | os.PathLike,
    kind: str = "cnn",
    train: TrainConfig | None = None,
    model_overrides: dict[str, Any] | None = None,
    perceptual: str = "stlpips",
    perceptual_frames: int | None = None,
    data_dir: str | None = None,
    holdout: float = 0.1,
    resume: bool = False,
) -> dict[str, Any]:
    """Train (or resume) a tokenizer; writes `run_dir/tokenizer/` and returns held-out metrics."""
    run_dir = Path(run_dir)
    train = train or TrainConfig()
    full = SequenceView(dataset_id, data_dir=data_dir)
    full.require_images("a tokenizer")
    settings = {
        "dataset_id": dataset_id,
        "data_dir": data_dir,
        "holdout": holdout,
        "perceptual": perceptual,
        "perceptual_frames": perceptual_frames,
        "train": dataclasses.asdict(train),
        "model": default_model_spec(kind, full.observation_space, model_overrides or {}, train),
    }
    settings = prepare_run(run_dir, settings, resume, must_match=("dataset_id",))
    train_ids, test_ids = split_episodes(full.num_episodes, settings["holdout"], seed=0)
    train_view = SequenceView(dataset_id, data_dir=data_dir, episodes=train_ids)
    test_view = SequenceView(dataset_id, data_dir=data_dir, episodes=test_ids or train_ids)

    torch.manual_seed(settings["train"]["seed"])  # the initial weights too follow the seed
    tokenizer = build_model(settings["model"])
    objective = TokenizerObjective(
        tokenizer,
        ReconstructionLoss(
            perceptual=settings["perceptual"], perceptual_frames=settings["perceptual_frames"]
        ),
    )
    trainer = Trainer(
        objective,
        train_view.sample,
        TrainConfig(**settings["train"]),
        run_dir,
        visualize=show_reconstructions,
    )
    if resume:
        trainer.resume()
    trainer.fit()
    if not trainer.is_main:
        return {}
    metrics = evaluate_tokenizer(tokenizer, test_view)
    save_model(tokenizer, run_dir / "tokenizer")
    return metrics
