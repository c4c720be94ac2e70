"""World models for inference: a frozen tokenizer plus an action-conditioned dynamics model.

The one sampler every consumer goes through (dream envs, evaluation, trainers' dream videos):
`start` reads real context frames into the dynamics' KV cache, `step` imagines one frame per
action for every row of a batch, `decode` turns latents into pixels, and `imagine` runs a
whole open-loop rollout. The state is passed in and out, so batched envs can restart single
rows (`replace_rows`). A tokenizer whose decoder reads earlier frames (the transformer
tokenizer) decodes each imagined frame in `step`, with its own KV cache in the state, and
`decode` given that state returns the frame. `BaseWorldModel` is that interface; the
masked video model has it too (`world_models.masked_video_world_model`).

Static-pixel copy (`copy_threshold`, a sampling setting): each imagined frame keeps the
previous frame's pixels wherever its decoded frame did not change by more than the threshold
since the previous decoded frame (a 3x3 neighbourhood around each changed pixel counts as
changed), starting from the last real context frame. What the dynamics leaves unchanged then
stays exactly as the real frame showed it, instead of carrying the decoder's small errors: the
compositing of a predicted frame with the previous one of Finn et al. 2016 (CDNA), with the
mask taken from the decoded change rather than learned.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from world_models.dynamics_state import DynamicsState
from world_models.tokenizer import Tokenizer

Generators = torch.Generator | list[torch.Generator] | None  # one, or one per row


@dataclass
class Imagined:
    """An imagined rollout: frames (B, T, H, W, C) in [0, 1], reward (B, T), continue (B, T);
    with static-pixel copy also the frames as the decoder gave them (`decoded`)."""

    frame: torch.Tensor
    reward: torch.Tensor
    cont: torch.Tensor
    decoded: torch.Tensor | None = None


def _check_compiler(device: torch.device) -> None:
    """`torch.compile` on CPU builds C++ kernels: refuse clearly when no compiler is found."""
    if device.type == "cpu" and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise ValueError(
            "compile=True on CPU needs a C++ compiler (c++, g++ or clang++) on PATH; install "
            "one (e.g. `apt install g++`) or use compile=False"
        )


@dataclass
class WorldModelState:
    """Inference state of B rollouts of a `WorldModel`: the dynamics' KV cache; for a
    tokenizer that decodes in context, its decoder cache; each row's newest frame (B, H, W, C)
    in [0, 1] where the model decodes in `step` (in context or with static-pixel copy), and
    with static-pixel copy that frame as the decoder gave it (`decoded`)."""

    dynamics: DynamicsState
    decoder: DynamicsState | None = None
    frames: torch.Tensor | None = None
    decoded: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.dynamics.batch_size

    def replace_rows(self, rows: torch.Tensor, other: WorldModelState) -> WorldModelState:
        """A new state where batch rows `rows` come from `other` (e.g. envs that were reset)."""
        decoder = None
        if self.decoder is not None and other.decoder is not None:
            decoder = self.decoder.replace_rows(rows, other.decoder)
        return WorldModelState(
            self.dynamics.replace_rows(rows, other.dynamics),
            decoder,
            _replace(self.frames, rows, other.frames),
            _replace(self.decoded, rows, other.decoded),
        )


def _replace(
    mine: torch.Tensor | None, rows: torch.Tensor, theirs: torch.Tensor | None
) -> torch.Tensor | None:
    """`mine` with rows `rows` taken from `theirs` (None when either is None)."""
    if mine is None or theirs is None:
        return None
    out = mine.clone()
    out[torch.as_tensor(rows, device=out.device).long()] = theirs
    return out


def copy_static_pixels(
    decoded: torch.Tensor, previous_decoded: torch.Tensor, previous: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Frames (B, H, W, C) in [0, 1]: `decoded` where it changed by more than `threshold` from
    `previous_decoded` (in any channel, dilated by one pixel), `previous` elsewhere."""
    change = (decoded - previous_decoded).abs().amax(-1)[:, None]  # (B, 1, H, W)
    changed = F.max_pool2d((change > threshold).float(), 3, stride=1, padding=1)
    return torch.where(changed[:, 0, ..., None] > 0, decoded, previous)


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
        on_frame: Callable[[], object] | None = None,
    ) -> Imagined:
        """Open-loop rollout: the first `context` steps of a real window are given, the rest are
        imagined from its actions (the no-action embedding where `labeled` is False). Returns
        (B, T - context, ...) frames, rewards, continues. `on_frame` is called after each
        imagined frame (e.g. a progress bar's update)."""
        state, _ = self.start(
            obs[:, :context], action[:, :context], labeled[:, :context], generator
        )
        frames, rewards, conts, decoded = [], [], [], []
        for t in range(context, obs.shape[1]):
            state, latents, reward, cont = self.step(state, action[:, t], generator, labeled[:, t])
            frames.append(self.decode(latents, state))
            rewards.append(reward)
            conts.append(cont)
            if getattr(state, "decoded", None) is not None:  # a WorldModel that copies
                decoded.append(state.decoded)
            if on_frame is not None:
                on_frame()
        stack = (torch.stack(x, 1) for x in (frames, rewards, conts))
        return Imagined(*stack, torch.stack(decoded, 1) if decoded else None)


class WorldModel(BaseWorldModel):
    """Tokenizer + dynamics, used for inference only; latents are the tokenizer's (N, D).
    `copy_threshold`: static-pixel copy (see the module's docstring) above this change in
    [0, 1] pixel units; None decodes every frame alone."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        dynamics: nn.Module,
        num_steps: int | None = None,
        copy_threshold: float | None = None,
    ) -> None:
        super().__init__()
        number = isinstance(copy_threshold, int | float) and not isinstance(copy_threshold, bool)
        if copy_threshold is not None and not (number and 0 < copy_threshold < 1):
            raise ValueError(
                f"copy_threshold is a change in [0, 1] pixel units, strictly between 0 and 1 "
                f"(or None for no static-pixel copy), got {copy_threshold!r}"
            )
        self.tokenizer = tokenizer
        self.dynamics = dynamics
        self.num_steps = num_steps or dynamics.config.num_sampling_steps
        self.copy_threshold = copy_threshold
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
        if self.copy_threshold is not None:
            state.decoded = self.decode(latents[:, -1], state)
            state.frames = obs[:, -1].float() / 255  # the real frame the dream starts from
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
        if self.copy_threshold is not None:
            new_state.decoded = self.decode(latents, new_state)
            new_state.frames = copy_static_pixels(
                new_state.decoded, state.decoded, state.frames, self.copy_threshold
            )
        return new_state, latents, reward, cont

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, state: WorldModelState | None = None) -> torch.Tensor:
        """Latents (B, N, D) -> frames (B, H, W, C) float in [0, 1]. With the `state` returned
        beside them, the frame made in `start` or `step`: decoded in context from the rollout's
        earlier frames, and with static-pixel copy composited with the previous frame;
        otherwise each frame is decoded alone."""
        if state is not None and state.frames is not None:
            if state.frames.shape[0] != latents.shape[0]:
                raise ValueError(
                    f"the state holds {state.frames.shape[0]} rollouts but got "
                    f"{latents.shape[0]} latents"
                )
            return state.frames
        return self.tokenizer.decode(latents[:, None])[:, 0].float().clamp(0, 1)
