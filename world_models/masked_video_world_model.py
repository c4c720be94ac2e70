"""The masked video model behind the world-model interface (`BaseWorldModel`), for dream envs.

`start` reads real context frames into the sampler's KV cache and `step` decodes the frame each
row's action leads to, both through `world_models.masked_video_sampler`. A frame's latents are
its tokens (N, P): the grey levels of its N patches of P pixels. `decode` turns them into frames
at `frame_size`, the observation size of the bundle, resizing from the model's image size when
they differ (nearest neighbour when growing, block means when shrinking); context frames are
resized to the model's size on the way in.

The model has no reward or continue heads: `step` returns reward 0 and continue probability 1,
so a dream episode of a masked video model ends only at its horizon.

Rows restarted with shorter contexts than the others (batched envs resetting single rows) hold
fewer frames in their attention window; temporal positions are absolute and shared within a
model call, so rows run in groups of equal window length (`MaskedVideoState`), which merge
again once their windows are full.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces

from world_models import masked_video_sampler as sampler
from world_models.masked_video import MaskedVideoModel, resize_frames
from world_models.masked_video_sampler import SamplingSettings, VideoState
from world_models.shortcut import Generators
from world_models.world_model import BaseWorldModel


def _take(state: VideoState, index: torch.Tensor) -> VideoState:
    """The rows `index` of a sampler state (its KV cache rows are grouped by batch row)."""
    b = state.tokens.shape[0]
    kv = [tuple(x.unflatten(0, (b, -1))[index].flatten(0, 1) for x in layer) for layer in state.kv]
    return VideoState(state.tokens[index], state.action[index], state.labeled[index], kv)


def _join(states: list[VideoState]) -> VideoState:
    """Sampler states of equal window length, stacked along the batch."""
    if len(states) == 1:
        return states[0]
    kv = [
        tuple(torch.cat(xs) for xs in zip(*layers, strict=True))
        for layers in zip(*(s.kv for s in states), strict=True)
    ]
    return VideoState(
        *(torch.cat([getattr(s, k) for s in states]) for k in ("tokens", "action", "labeled")),
        kv,
    )


@dataclass
class MaskedVideoState:
    """Inference state of B rollouts: groups of batch rows (`rows[i]`, long) whose windows hold
    equally many frames, each with its sampler state `groups[i]`."""

    rows: list[torch.Tensor]
    groups: list[VideoState]

    @property
    def batch_size(self) -> int:
        return sum(len(r) for r in self.rows)

    def merged(self) -> MaskedVideoState:
        """The same state with groups of equal window length joined."""
        by_length: dict[int, list[int]] = {}
        for i, group in enumerate(self.groups):
            by_length.setdefault(group.tokens.shape[1], []).append(i)
        rows = [torch.cat([self.rows[i] for i in ids]) for ids in by_length.values()]
        groups = [_join([self.groups[i] for i in ids]) for ids in by_length.values()]
        return MaskedVideoState(rows, groups)

    def replace_rows(self, rows: torch.Tensor, other: MaskedVideoState) -> MaskedVideoState:
        """A new state where batch rows `rows` come from `other` (e.g. envs that were reset)."""
        device = self.rows[0].device
        rows = torch.as_tensor(rows, device=device).long()
        if len(rows) != other.batch_size:
            raise ValueError(
                f"{len(rows)} rows to replace but the new state has {other.batch_size}"
            )
        kept_rows, kept = [], []
        for group_rows, group in zip(self.rows, self.groups, strict=True):
            keep = ~torch.isin(group_rows, rows)
            if keep.any():
                kept_rows.append(group_rows[keep])
                kept.append(_take(group, keep.nonzero()[:, 0]))
        new_rows = [rows[r.to(device)] for r in other.rows]
        return MaskedVideoState(kept_rows + new_rows, kept + other.groups).merged()


class MaskedVideoWorldModel(BaseWorldModel):
    """A masked video model as a world model (inference only); see the module docstring.

    frame_size: side of the frames `decode` returns and `start` reads (default: the model's
    image size); it and the model's size must divide one another. settings: how frames are
    decoded (default: the model's sampling settings).
    """

    def __init__(
        self,
        model: MaskedVideoModel,
        frame_size: int | None = None,
        settings: SamplingSettings | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        c = model.config
        if c.max_frames < 2:
            raise ValueError("sampling needs max_frames >= 2 (one past frame and the new one)")
        self.frame_size = frame_size or c.image_size
        small, large = sorted((self.frame_size, c.image_size))
        if large % small:
            raise ValueError(
                f"frames of {self.frame_size}x{self.frame_size} cannot be served by a model of "
                f"{c.image_size}x{c.image_size}: the sizes must divide one another"
            )
        self.settings = settings or SamplingSettings.from_model(model)
        self.num_steps = self.settings.num_steps
        shape = (c.tokens_per_frame, c.pixels_per_token)
        self.latent_space = spaces.Box(0, c.levels - 1, shape, np.uint8)

    @torch.no_grad()
    def start(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        labeled: torch.Tensor,
        generator: Generators = None,
    ) -> tuple[MaskedVideoState, torch.Tensor]:
        """Read real context obs (B, T0, S, S, C) uint8 at `frame_size`, action (B, T0, ...),
        labeled (B, T0) (reading is deterministic: `generator` is unused). Returns (state,
        context tokens (B, T0, N, P))."""
        frames = resize_frames(obs, self.model.config.image_size)
        state = sampler.start(self.model, frames, action, labeled)
        rows = torch.arange(obs.shape[0], device=obs.device)
        return MaskedVideoState([rows], [state]), self.model.frames_to_tokens(frames)

    @torch.no_grad()
    def step(
        self,
        state: MaskedVideoState,
        action: torch.Tensor,
        generator: Generators = None,
        labeled: torch.Tensor | None = None,
    ) -> tuple[MaskedVideoState, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode the frame each row's action (B, ...) leads to (generator: one, or one per
        row; labeled (B,): False where the action is unknown, None: all known). Returns
        (state, tokens (B, N, P), reward (B,) = 0, continue probability (B,) = 1): the model
        predicts neither."""
        b = state.batch_size
        if action.shape[0] != b:
            raise ValueError(f"state holds {b} rollouts but got {action.shape[0]} actions")
        c, device = self.model.config, state.groups[0].tokens.device
        shape = (b, c.tokens_per_frame, c.pixels_per_token)
        tokens = torch.empty(shape, dtype=torch.long, device=device)
        known = torch.ones(b, dtype=torch.bool, device=device) if labeled is None else labeled
        groups = []
        for rows, group in zip(state.rows, state.groups, strict=True):
            act = action[rows]
            labeled = known[rows].to(device)
            rng = generator
            if generator is not None and not isinstance(generator, torch.Generator):
                rng = [generator[i] for i in rows.tolist()]
            new = sampler.decode_frame(self.model, group, act, labeled, self.settings, rng)
            tokens[rows] = new
            groups.append(sampler.append(self.model, group, new, act, labeled))
        new_state = MaskedVideoState(list(state.rows), groups).merged()
        reward = torch.zeros(b, device=device)
        return new_state, tokens, reward, torch.ones_like(reward)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, state: MaskedVideoState | None = None) -> torch.Tensor:
        """Tokens (B, N, P) -> frames (B, S, S, C) float in [0, 1] at `frame_size` (tokens are
        pixels: `state` is not needed)."""
        frames = resize_frames(self.model.tokens_to_frames(latents), self.frame_size)
        return frames.float() / 255
