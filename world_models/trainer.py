"""One training loop for every world-model part (tokenizer, dynamics, masked video model).

The loop owns what all of them share: AdamW, linear warm-up + cosine decay, gradient clipping,
bf16 autocast on GPU, a progress bar, TensorBoard scalars, atomic checkpoints with an exact
`--resume` (model, optimizer, step and every RNG), optional alternating short and long batches,
and DistributedDataParallel under `torchrun` (the same code runs on one CPU).

What differs between models is the `objective`: an `nn.Module` whose `forward(batch)` returns
`(loss, metrics)`, and an optional `visualize(objective, batch, writer, step)` hook for images.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from world_models.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    set_torch_rng_state,
    torch_rng_state,
    unwrap,
)

Batch = dict[str, Any]  # tensors, or dicts of tensors (Dict observations)
Sampler = Callable[[int, int, np.random.Generator], dict[str, np.ndarray]]
Visualize = Callable[[nn.Module, Batch, SummaryWriter, int], None]


@dataclass
class TrainConfig:
    """Optimisation settings shared by every trainer (saved in each checkpoint)."""

    steps: int = 2000
    batch_size: int = 16
    seq_len: int = 8
    long_seq_len: int = 0  # > 0: every `long_every`-th batch uses this length (Dreamer 4)
    long_every: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    log_every: int = 10
    image_every: int = 250
    ckpt_every: int = 250
    seed: int = 0

    def __post_init__(self) -> None:
        at_least = {"steps": 0, "warmup": 0, "long_seq_len": 0, "batch_size": 1, "seq_len": 1}
        at_least |= dict.fromkeys(("long_every", "log_every", "image_every", "ckpt_every"), 1)
        problems = [
            f"{name} (--{name.replace('_', '-')}) must be >= {low}, got {getattr(self, name)}"
            for name, low in at_least.items()
            if getattr(self, name) < low
        ]
        if not (self.lr >= 0 and self.weight_decay >= 0 and self.grad_clip > 0):
            problems.append("lr and weight_decay must be >= 0 and grad_clip > 0")
        if not 0 <= self.min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if problems:
            raise ValueError("bad training settings: " + "; ".join(problems))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at `step`: linear warm-up, then cosine decay to `min_lr_ratio * lr`."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine)


def seq_len_at(step: int, cfg: TrainConfig) -> int:
    """Batch length at `step`: short batches, with a long one every `long_every` steps."""
    if cfg.long_seq_len > 0 and step % cfg.long_every == cfg.long_every - 1:
        return cfg.long_seq_len
    return cfg.seq_len


def init_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device). Under `torchrun` this joins the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def to_device(batch: dict[str, Any], device: torch.device) -> Batch:
    """numpy arrays (or dicts of them) -> tensors on `device` (uint8 frames stay uint8)."""
    return {
        k: to_device(v, device)
        if isinstance(v, dict)
        else torch.from_numpy(np.ascontiguousarray(v)).to(device)
        for k, v in batch.items()
    }


class Trainer:
    """Runs `cfg.steps` optimisation steps of `objective` on batches from `sampler`."""

    def __init__(
        self,
        objective: nn.Module,
        sampler: Sampler,
        cfg: TrainConfig,
        run_dir: str | os.PathLike,
        extra_state: dict[str, Any] | None = None,
        visualize: Visualize | None = None,
    ) -> None:
        self.rank, self.world, self.device = init_distributed()
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.sampler = sampler
        self.visualize = visualize
        self.extra_state = extra_state or {}
        self.objective = objective.to(self.device)
        params = [p for p in self.objective.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95)
        )
        self.model: nn.Module = self.objective
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(
                self.objective, device_ids=ids, broadcast_buffers=False
            )
        self.rng = np.random.default_rng([cfg.seed, self.rank])
        torch.manual_seed(cfg.seed + self.rank)
        self.step = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _rng_state(self) -> dict[str, Any]:
        """This process's random streams: the batch sampler's, torch's CPU and CUDA ones."""
        return {"numpy_rng": self.rng.bit_generator.state, **torch_rng_state(self.device)}

    def _set_rng_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["numpy_rng"]
        set_torch_rng_state(state, self.device)

    def _state(self) -> dict[str, Any]:
        """The JSON state of a checkpoint, with every process's random streams (a collective
        call under torchrun: every rank takes part)."""
        rngs: list[Any] = [self._rng_state()]
        if self.world > 1:
            rngs = [None] * self.world
            dist.all_gather_object(rngs, self._rng_state())
        return {"train_config": asdict(self.cfg), "rank_rngs": rngs, **self.extra_state}

    def resume(self) -> bool:
        """Continue from the run's latest checkpoint; False when there is none. Each process
        gets back its own random streams (fresh ones, from the seed, rank and step, when the
        run had another number of processes)."""
        folder = latest_checkpoint(self.run_dir)
        if folder is None:
            return False
        state = load_checkpoint(folder, self.objective, self.optimizer)
        self.step = int(state["step"])
        # checkpoints before per-rank streams held one process's at the top level
        rngs = state.get("rank_rngs") or [{k: state[k] for k in ("numpy_rng", "torch_rng")}]
        if len(rngs) == self.world:
            self._set_rng_state(rngs[self.rank])
        else:
            self.rng = np.random.default_rng([self.cfg.seed, self.rank, self.step])
            torch.manual_seed(int(self.rng.integers(2**62)))
        return True

    def save(self) -> None:
        """Checkpoint (atomically, from the main process; every process calls it)."""
        state = self._state()
        if self.is_main:
            save_checkpoint(self.run_dir, self.step, self.objective, self.optimizer, state)

    def _train_step(self, batch: Batch) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, self.cfg)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        with autocast:
            loss, metrics = self.model(batch)
        bad = torch.tensor(float(not torch.isfinite(loss)), device=self.device)
        if self.world > 1:  # every process stops, not only the one whose loss blew up
            dist.all_reduce(bad)
        if bad.item():
            raise FloatingPointError(f"loss is {loss.item()} at step {self.step}; lower --lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.objective.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        return {"loss": loss.item(), "grad_norm": grad_norm.item(), **metrics}

    def fit(self) -> nn.Module:
        """Train to `cfg.steps`, checkpointing on the way and at the end; returns the objective."""
        writer = None
        if self.is_main:  # on resume, hide what a killed run logged after its last checkpoint
            purge = self.step + 1 if self.step else None
            writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge)
        bar = tqdm(
            total=self.cfg.steps, initial=self.step, disable=not self.is_main, dynamic_ncols=True
        )
        self.objective.train()
        try:
            while self.step < self.cfg.steps:
                seq_len = seq_len_at(self.step, self.cfg)
                batch = to_device(self.sampler(self.cfg.batch_size, seq_len, self.rng), self.device)
                metrics = self._train_step(batch)
                self.step += 1
                bar.update(1)
                if writer and self.step % self.cfg.log_every == 0:
                    for key, value in metrics.items():
                        writer.add_scalar(f"train/{key}", value, self.step)
                    writer.add_scalar("train/lr", lr_at(self.step - 1, self.cfg), self.step)
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}")
                if writer and self.visualize and self.step % self.cfg.image_every == 0:
                    self.objective.eval()
                    with torch.no_grad():
                        self.visualize(unwrap(self.objective), batch, writer, self.step)
                    self.objective.train()
                if self.step % self.cfg.ckpt_every == 0 or self.step == self.cfg.steps:
                    self.save()
        finally:
            bar.close()
            if writer:
                writer.close()
        return self.objective
