"""World models for inference: a frozen tokenizer plus an action-conditioned dynamics model.

The one sampler every consumer goes through (dream envs, evaluation, trainers' dream videos):
`start` reads real context frames into the dynamics' KV cache, `step` imagines one frame per
action for every row of a batch, `decode` turns latents into pixels, and `imagine` runs a
whole open-loop rollout. The state is passed in and out, so batched envs can restart single
rows (`replace_rows`). A tokenizer whose decoder reads earlier frames (the transformer
tokenizer) decodes each imagined frame in `step`, with its own KV cache in the state, and
`decode` given that state returns the frame. `BaseWorldModel` is that interface; the
masked video model has it too (`world_models.masked_video_world_model`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from world_models.dynamics_state import DynamicsState
from world_models.tokenizer import Tokenizer

Generators = torch.Generator | list[torch.Generator] | None  # one, or one per row


@dataclass
class Imagined:
    """An imagined rollout: frames (B, T, H, W, C) in [0, 1], reward (B, T), continue (B, T)."""

    frame: torch.Tensor
    reward: torch.Tensor
    cont: torch.Tensor


def _check_compiler(device: torch.device) -> None:
    """`torch.compile` on CPU builds C++ kernels: refuse clearly when no compiler is found."""
    if device.type == "cpu" and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise ValueError(
            "compile=True on CPU needs a C++ compiler (c++, g++ or clang++) on PATH; install "
            "one (e.g. `apt install g++`) or use compile=False"
        )


@dataclass
class WorldModelState:
    """Inference state of B rollouts of a `WorldModel`: the dynamics' KV cache and, for a
    tokenizer that decodes in context, its decoder cache and each row's newest frame decoded
    with it (B, H, W, C) in [0, 1]."""

    dynamics: DynamicsState
    decoder: DynamicsState | None = None
    frames: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.dynamics.batch_size

    def replace_rows(self, rows: torch.Tensor, other: WorldModelState) -> WorldModelState:
        """A new state where batch rows `rows` come from `other` (e.g. envs that were reset)."""
        dynamics = self.dynamics.replace_rows(rows, other.dynamics)
        if self.decoder is None or other.decoder is None:
            return WorldModelState(dynamics)
        frames = self.frames.clone()
        frames[torch.as_tensor(rows, device=frames.device).long()] = other.frames
        return WorldModelState(dynamics, self.decoder.replace_rows(rows, other.decoder), frames)


class BaseWorldModel(nn.Module):
    """The inference interface of a world model; states have `batch_size` and `replace_rows`.

    `latent_space` is the space of one frame's latents, which dream envs serve with
    obs_mode="latents". `num_steps`: the sampling steps that decode one frame."""

    latent_space: spaces.Box
    num_steps: int

    def start(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        labeled: torch.Tensor,
        generator: Generators = None,
    ) -> tuple[Any, torch.Tensor]:
        """Read real context: obs (B, T0, H, W, C) uint8, action (B, T0, ...), labeled (B, T0)
        (alignment of data_collection.sequence_view). Returns (state, context latents (B, T0,
        ...))."""
        raise NotImplementedError

    def step(
        self,
        state: Any,
        action: torch.Tensor,
        generator: Generators = None,
        labeled: torch.Tensor | None = None,
    ) -> tuple[Any, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Imagine the frame each row's action (B, ...) leads to; labeled (B,) bool, False
        where the action is unknown (None: all known). Returns (state, latents (B, ...), reward
        (B,), continue probability (B,))."""
        raise NotImplementedError

    def decode(self, latents: torch.Tensor, state: Any = None) -> torch.Tensor:
        """One frame's latents per row (B, ...) -> frames (B, H, W, C) float in [0, 1].
        `state`: the one `start` or `step` returned beside these latents, which lets a decoder
        that reads earlier frames use them (None: each frame decoded alone)."""
        raise NotImplementedError

    def compile_for_speed(self) -> None:
        """Compile the network each frame runs with `torch.compile` (in place): faster steps
        after a warm-up of about a minute, results equal up to float rounding."""
        raise ValueError(f"{type(self).__name__} has no compiled mode; use compile=False")

    def trace_for_speed(self) -> None:
        """Run each frame's network through TorchScript traces where the model has them (the
        same results, less per-op overhead); a no-op for models without."""

    @torch.no_grad()
    def imagine(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        labeled: torch.Tensor,
        context: int,
        generator: Generators = None,
    ) -> Imagined:
        """Open-loop rollout: the first `context` steps of a real window are given, the rest are
        imagined from its actions (the no-action embedding where `labeled` is False). Returns
        (B, T - context, ...) frames, rewards, continues."""
        state, _ = self.start(
            obs[:, :context], action[:, :context], labeled[:, :context], generator
        )
        frames, rewards, conts = [], [], []
        for t in range(context, obs.shape[1]):
            state, latents, reward, cont = self.step(state, action[:, t], generator, labeled[:, t])
            frames.append(self.decode(latents, state))
            rewards.append(reward)
            conts.append(cont)
        return Imagined(torch.stack(frames, 1), torch.stack(rewards, 1), torch.stack(conts, 1))


class WorldModel(BaseWorldModel):
    """Tokenizer + dynamics, used for inference only; latents are the tokenizer's (N, D)."""

    def __init__(
        self, tokenizer: Tokenizer, dynamics: nn.Module, num_steps: int | None = None
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.dynamics = dynamics
        self.num_steps = num_steps or dynamics.config.num_sampling_steps
        shape = (tokenizer.num_latents, tokenizer.latent_dim)
        self.latent_space = spaces.Box(-1.0, 1.0, shape, np.float32)

    def compile_for_speed(self) -> None:
        """Compile the space-time transformer, which the K shortcut steps and the cache write
        of every frame run (at B = 1 it costs per-op overhead, which compiling fuses away);
        with dynamic shapes, so the growing KV cache does not compile a graph per length."""
        _check_compiler(next(self.dynamics.parameters()).device)
        # one dream compiles about 7 graphs (with and without a cache, a mask, the write); the
        # process-wide default limit of 8 would send the second compiled dream back to eager
        config = torch._dynamo.config  # the setting's name before torch 2.7: cache_size_limit
        name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
        setattr(config, name, max(getattr(config, name), 64))
        self.dynamics.net.compile(dynamic=True)

    def trace_for_speed(self) -> None:
        """Trace the dynamics' cache-reading passes (`world_models.traced_passes`): exactly the
        eager results, about a third less time per pass at one env on CPU."""
        self.dynamics.trace_for_speed()

    @torch.no_grad()
    def start(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        labeled: torch.Tensor,
        generator: Generators = None,
    ) -> tuple[WorldModelState, torch.Tensor]:
        """Read real context into a new state: obs (B, T0, H, W, C) uint8, action
        (B, T0, ...), labeled (B, T0) (alignment of data_collection.sequence_view).
        Returns (state, context latents (B, T0, N, D))."""
        latents = self.tokenizer.encode(obs)
        state = WorldModelState(self.dynamics.start(latents, action, labeled, generator=generator))
        if self.tokenizer.decodes_in_context:
            frames, state.decoder = self.tokenizer.decode_start(latents)
            state.frames = frames[:, -1].float().clamp(0, 1)
        return state, latents

    @torch.no_grad()
    def step(
        self,
        state: WorldModelState,
        action: torch.Tensor,
        generator: Generators = None,
        labeled: torch.Tensor | None = None,
    ) -> tuple[WorldModelState, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Imagine the frame each row's action (B, ...) leads to, with K shortcut steps
        (labeled (B,): False uses the no-action embedding). Returns (state, latents (B, N, D),
        reward (B,), continue probability (B,))."""
        latents, reward, cont, dynamics = self.dynamics.step(
            state.dynamics, action, num_steps=self.num_steps, generator=generator, labeled=labeled
        )
        new_state = WorldModelState(dynamics)
        if state.decoder is not None:
            frames, new_state.decoder = self.tokenizer.decode_next(latents, state.decoder)
            new_state.frames = frames.float().clamp(0, 1)
        return new_state, latents, reward, cont

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, state: WorldModelState | None = None) -> torch.Tensor:
        """Latents (B, N, D) -> frames (B, H, W, C) float in [0, 1]. With the `state` returned
        beside them, a tokenizer that decodes in context gives the frame it decoded there from
        the rollout's earlier frames; otherwise each frame is decoded alone."""
        if state is not None and state.frames is not None:
            if state.frames.shape[0] != latents.shape[0]:
                raise ValueError(
                    f"the state holds {state.frames.shape[0]} rollouts but got "
                    f"{latents.shape[0]} latents"
                )
            return state.frames
        return self.tokenizer.decode(latents[:, None])[:, 0].float().clamp(0, 1)
