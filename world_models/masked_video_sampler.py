"""Sampling from the masked video model: one frame at a time, MaskGIT-style.

`start` reads real context frames into a KV cache: past frames are fully known, and with causal
temporal attention nothing they compute depends on later frames, so each block's temporal keys
and values of the past are computed once. `step` decodes the frame an action leads to in K
iterative steps; at step k (r = (k + 1) / K):

- every still-masked token takes, with `median` (the default), each pixel's median level (the
  lowest level whose cumulative probability reaches 1/2: deterministic, grey where the model is
  unsure, as the block-averaged edges of real 32x32 frames are, and unmoved by the label-
  smoothing floor); otherwise it draws them from softmax(logits / T_k), T_k = temperature
  * (1 - k / K) (annealed towards 0; argmax when it is 0). On Moving MNIST at 32x32 the median
  keeps digits intact over 10 frames where draws and argmax thicken them into blobs;
- its confidence is the log-probability of the chosen patch plus Gumbel noise scaled by
  confidence_noise * (1 - r) (annealed to 0);
- the most confident tokens are decoded so that floor(N cos(r pi / 2)) stay masked (the cosine
  schedule; at least one is decoded per step); decoded tokens never change again.

With `guidance` w > 0 the logits are logits_cond + w (logits_cond - logits_uncond), the
unconditional ones from the single-frame objective (the frame alone, no action).

The finished frame is appended to the cache with one more pass. The cache holds at most
max_frames - 1 frames; past that the window slides: the last max_frames - 1 frames are encoded
again at positions 0 .. max_frames - 2 (learned temporal positions are absolute).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import torch

from world_models.layers import KV
from world_models.masked_video import MaskedVideoModel
from world_models.shortcut import Generators


@dataclass(frozen=True)
class SamplingSettings:
    """How a frame is decoded; `from_model` fills unset fields from the model's config."""

    num_steps: int = 20
    temperature: float = 1.0
    confidence_noise: float = 4.5
    guidance: float = 0.0
    median: bool = True

    @classmethod
    def from_model(
        cls, model: MaskedVideoModel, **overrides: float | bool | None
    ) -> SamplingSettings:
        """The model config's sampling defaults, with the non-None `overrides`."""
        c = model.config
        settings = cls(
            c.num_sampling_steps, c.temperature, c.confidence_noise, c.guidance, c.median_decoding
        )
        settings = dataclasses.replace(
            settings, **{k: v for k, v in overrides.items() if v is not None}
        )
        steps = settings.num_steps
        whole = isinstance(steps, numbers.Integral) and not isinstance(steps, bool)
        if not whole or steps < 1 or settings.temperature < 0 or settings.confidence_noise < 0:
            raise ValueError(
                f"bad sampling settings {settings}: a whole num_steps >= 1, temperature >= 0 "
                "and confidence_noise >= 0 are required"
            )
        return settings


@dataclass
class VideoState:
    """The frames in the attention window and their cached temporal keys and values."""

    tokens: torch.Tensor  # (B, T, N, P) levels
    action: torch.Tensor  # (B, T, ...)
    labeled: torch.Tensor  # (B, T) bool
    kv: list[KV]  # per block, each (B N, heads, T, head_dim)


def _gumbel(shape: torch.Size, generator: Generators, device: torch.device) -> torch.Tensor:
    """Gumbel noise; with one generator per row, row i (of shape[0]) is drawn from generator i,
    so a batch of rollouts draws exactly what each would draw alone."""
    if generator is None or isinstance(generator, torch.Generator):
        u = torch.rand(shape, generator=generator, device=device)
    else:
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]} rows")
        u = torch.stack([torch.rand(shape[1:], generator=g, device=device) for g in generator])
    return -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))


@torch.no_grad()
def encode(
    model: MaskedVideoModel, tokens: torch.Tensor, action: torch.Tensor, labeled: torch.Tensor
) -> VideoState:
    """A state holding known frames tokens (B, T, N, P) at positions 0 .. T - 1 (causal)."""
    _, kv = model(tokens, action, labeled, is_causal=True)
    return VideoState(tokens, action, labeled.bool(), kv)


@torch.no_grad()
def start(
    model: MaskedVideoModel, frames: torch.Tensor, action: torch.Tensor, labeled: torch.Tensor
) -> VideoState:
    """Read real context: uint8 frames (B, T0, H, W, C) at the model's size, action (B, T0, ...),
    labeled (B, T0). Only the last max_frames - 1 frames are kept."""
    window = model.config.max_frames - 1
    if window < 1:
        raise ValueError("sampling needs max_frames >= 2 (one past frame and the new one)")
    if frames.ndim != 5 or frames.shape[1] < 1:
        raise ValueError(f"context frames must be (B, T0 >= 1, H, W, C), got {frames.shape}")
    tokens = model.frames_to_tokens(frames[:, -window:])
    return encode(model, tokens, action[:, -window:], labeled[:, -window:])


@torch.no_grad()
def decode_frame(
    model: MaskedVideoModel,
    state: VideoState,
    action: torch.Tensor,
    labeled: torch.Tensor,
    settings: SamplingSettings,
    generator: Generators = None,
) -> torch.Tensor:
    """Tokens (B, N, P) of the next frame after `state`, given its action (B, ...). generator:
    one, or one per row (row i then draws exactly what it would draw alone)."""
    b, pos, n, p = state.tokens.shape
    device = state.tokens.device
    x = torch.full((b, 1, n, p), model.mask_id, dtype=torch.long, device=device)
    masked = torch.ones(b, n, dtype=torch.bool, device=device)
    null_labeled = torch.zeros(b, 1, dtype=torch.bool, device=device)
    k_steps = settings.num_steps
    for k in range(k_steps):
        remaining = int(masked[0].sum())
        if remaining == 0:
            break
        logits = model(x, action[:, None], labeled[:, None], start=pos, past_kv=state.kv)[0]
        logits = logits[:, 0].float()  # (B, N, P, L)
        if settings.guidance:
            uncond = model(x, action[:, None], null_labeled, start=pos)[0][:, 0].float()
            logits = logits + settings.guidance * (logits - uncond)
        temperature = settings.temperature * (1 - k / k_steps)
        if settings.median:
            below = logits.softmax(-1).cumsum(-1) < 0.5
            sampled = below.sum(-1).clamp(max=logits.shape[-1] - 1)  # (B, N, P) median
        elif temperature > 0:
            sampled = (logits / temperature + _gumbel(logits.shape, generator, device)).argmax(-1)
        else:
            sampled = logits.argmax(-1)
        logp = logits.log_softmax(-1).gather(-1, sampled[..., None])[..., 0].sum(-1)  # (B, N)
        r = (k + 1) / k_steps
        noise = settings.confidence_noise * (1 - r)
        confidence = logp + noise * _gumbel(logp.shape, generator, device) if noise else logp
        confidence = confidence.masked_fill(~masked, math.inf)
        stay_masked = min(math.floor(n * math.cos(r * math.pi / 2)), remaining - 1)
        rank = confidence.argsort(1, descending=True).argsort(1)
        decode_now = masked & (rank < n - stay_masked)
        x[:, 0] = torch.where(decode_now[..., None], sampled, x[:, 0])
        masked &= ~decode_now
    return x[:, 0]


@torch.no_grad()
def append(
    model: MaskedVideoModel,
    state: VideoState,
    tokens: torch.Tensor,
    action: torch.Tensor,
    labeled: torch.Tensor,
) -> VideoState:
    """The state with a finished frame tokens (B, N, P) added (sliding the window when full)."""
    new = (tokens[:, None], action[:, None], labeled[:, None].bool())
    old = (state.tokens, state.action, state.labeled)
    joined = [torch.cat(pair, 1) for pair in zip(old, new, strict=True)]
    if state.tokens.shape[1] >= model.config.max_frames - 1:
        return encode(model, *(t[:, 1:] for t in joined))
    pos = state.tokens.shape[1]
    _, kv = model(*(t[:, -1:] for t in joined), start=pos, past_kv=state.kv)
    return VideoState(*joined, kv)


@torch.no_grad()
def step(
    model: MaskedVideoModel,
    state: VideoState,
    action: torch.Tensor,
    labeled: torch.Tensor | None = None,
    settings: SamplingSettings | None = None,
    generator: Generators = None,
) -> tuple[torch.Tensor, VideoState]:
    """Imagine the frame `action` (B, ...) leads to: uint8 (B, H, W, C) and the new state."""
    settings = settings or SamplingSettings.from_model(model)
    if labeled is None:
        labeled = torch.ones(action.shape[0], dtype=torch.bool, device=action.device)
    tokens = decode_frame(model, state, action, labeled, settings, generator)
    return model.tokens_to_frames(tokens), append(model, state, tokens, action, labeled)


@torch.no_grad()
def rollout(
    model: MaskedVideoModel,
    frames: torch.Tensor,
    action: torch.Tensor,
    labeled: torch.Tensor,
    context: int,
    settings: SamplingSettings | None = None,
    generator: Generators = None,
) -> torch.Tensor:
    """Open loop: the first `context` of frames (B, T, H, W, C) uint8 are given, the other
    T - context are imagined from action (B, T, ...) and labeled (B, T) -> (B, T - context, H, W,
    C) uint8. Only the context part of `frames` is read."""
    if not 1 <= context < frames.shape[1]:
        raise ValueError(f"context must be in [1, {frames.shape[1] - 1}], got {context}")
    state = start(model, frames[:, :context], action[:, :context], labeled[:, :context])
    out = []
    for t in range(context, frames.shape[1]):
        frame, state = step(model, state, action[:, t], labeled[:, t], settings, generator)
        out.append(frame)
    return torch.stack(out, 1)
