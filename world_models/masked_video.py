"""CoPilot4D-style discrete masked video world model (for Moving MNIST).

Frames are quantised to `levels` grey levels (16: level = round(x * 15 / 255), exact back to
uint8 as level * 17) and cut into patches of `patch_size` x `patch_size` pixels. One token is
one patch: its P = patch_size^2 * channels pixel levels are embedded (a sum of per-pixel,
per-level embeddings) and predicted by a factorised head (P independent softmaxes over the
levels given the token's features). A masked token has every pixel set to `MASK = levels`, the
[MASK] symbol of the vocabulary (levels + 1); the head never predicts it (MDLM's SUBS rule).
At 32x32 with 4x4 patches a frame is 64 tokens; `patch_size=1` gives one token per pixel.

Each token gets learned spatial and temporal position embeddings (and, with `rope`, rotary
positions in attention: 2D row / column in space, 1D in time, which make "the token one to the
left, one frame back" the same relation everywhere and speed up learning on CPU), plus the
embedding of its frame's action (`world_models.action_encoder.ActionEncoder`, with its
no-action embedding where the action is unknown). Blocks are factorised: spatial attention
within each frame, temporal attention across frames at each token position, then a SwiGLU MLP
(pre-norm, from `world_models.layers`). The temporal attention takes a per-sequence frame mask,
so one batch mixes the three objectives of `world_models.masked_video_loss`: causal future
prediction, bidirectional joint denoising and single frames.

Data alignment (the dataset sequence view): action[t] led to frame t; labeled[t] is False at
t = 0. Sampling lives in `world_models.masked_video_sampler`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from world_models.action_encoder import ActionEncoder, spec_to_space
from world_models.layers import KV, Attention, RMSNorm, Rope, RotaryEmbedding, SwiGLU

MOVING_MNIST_ACTION_SPEC = {"type": "Box", "low": [-1.0, -1.0], "high": [1.0, 1.0], "shape": [2]}


@dataclass
class MaskedVideoConfig:
    """Settings of the masked video model; every field is JSON-serialisable."""

    action_spec: dict[str, Any] = field(default_factory=lambda: dict(MOVING_MNIST_ACTION_SPEC))
    image_size: int = 32  # frames are image_size x image_size
    channels: int = 1
    levels: int = 16  # grey levels per pixel; the [MASK] symbol is `levels`
    patch_size: int = 4  # pixels per token side
    max_frames: int = 8  # temporal positions = frames in the attention window
    dim: int = 96
    depth: int = 4  # factorised blocks (spatial + temporal attention + MLP each)
    num_heads: int = 4
    mlp_hidden_dim: int | None = None  # None: 8/3 * dim
    rope: bool = True  # also rotary positions: 2D (row, column) in space, 1D in time
    # objective mix (normalised): causal future prediction, joint denoising, single frames
    p_future: float = 0.5
    p_joint: float = 0.4
    p_single: float = 0.1
    corrupt_max: float = 0.2  # share of unmasked target tokens replaced by random tokens, U(0, max)
    context_corrupt_max: float = 0.0  # the same for clean context frames (future objective)
    label_smoothing: float = 0.1
    action_dropout: float = 0.1  # share of actions hidden in training (no-action embedding)
    # sampling defaults (overridable per call)
    num_sampling_steps: int = 20
    temperature: float = 1.0  # draws' temperature at the first step, annealed to 0
    confidence_noise: float = 4.5  # Gumbel noise scale on confidences, annealed to 0
    guidance: float = 0.0  # classifier-free guidance weight w (0: off; CoPilot4D uses ~2)
    median_decoding: bool = True  # decode each pixel's median level; False: draw it
    # motion of the generated Moving MNIST the model was trained on (`train_masked_video`
    # records --max-speed / --speed here; the benchmark draws its test sequences alike)
    data_max_speed: float = 3.0
    data_speed: list[float] = field(default_factory=lambda: [1.0, 2.0])

    def __post_init__(self) -> None:
        spec_to_space(self.action_spec)
        problems = []
        if min(self.image_size, self.patch_size) < 1 or self.image_size % self.patch_size:
            problems.append(
                "image_size and patch_size must be >= 1, image_size a multiple of patch_size"
            )
        if not 2 <= self.levels <= 256 or 255 % (self.levels - 1):
            problems.append("levels must be in [2, 256] with 255 divisible by levels - 1")
        if (
            min(self.dim, self.num_heads) < 1
            or self.dim % self.num_heads
            or (self.dim // self.num_heads) % 4
        ):
            problems.append("dim must divide by num_heads >= 1 into a head width divisible by 4")
        if min(self.max_frames, self.depth, self.channels, self.num_sampling_steps) < 1:
            problems.append("max_frames, depth, channels and num_sampling_steps must be >= 1")
        if self.mlp_hidden_dim is not None and self.mlp_hidden_dim < 1:
            problems.append("mlp_hidden_dim must be >= 1 (or None)")
        probs = (self.p_future, self.p_joint, self.p_single)
        if min(probs) < 0 or sum(probs) <= 0:
            problems.append("p_future, p_joint, p_single must be >= 0 with a positive sum")
        if not (0 <= self.corrupt_max < 1 and 0 <= self.context_corrupt_max < 1):
            problems.append("corrupt_max and context_corrupt_max must be in [0, 1)")
        if not 0 <= self.label_smoothing < 1:
            problems.append("label_smoothing must be in [0, 1)")
        if not 0 <= self.action_dropout <= 1:
            problems.append("action_dropout must be in [0, 1]")
        if not all(x >= 0 for x in (self.temperature, self.confidence_noise, self.guidance)):
            problems.append("temperature, confidence_noise and guidance must be >= 0")
        speed = self.data_speed
        top = self.data_max_speed
        if len(speed) != 2 or not (top > 0 and 0 <= speed[0] <= speed[1] <= top):
            problems.append("data_max_speed must be > 0, data_speed [low, high] in [0, it]")
        if problems:
            raise ValueError("bad MaskedVideoConfig: " + "; ".join(problems))

    @property
    def grid(self) -> int:
        """Tokens per frame side."""
        return self.image_size // self.patch_size

    @property
    def tokens_per_frame(self) -> int:
        return self.grid**2

    @property
    def pixels_per_token(self) -> int:
        return self.patch_size**2 * self.channels


def quantise(frames: torch.Tensor, levels: int = 16) -> torch.Tensor:
    """uint8 pixels -> long levels in [0, levels): round(x * (levels - 1) / 255)."""
    if frames.dtype != torch.uint8:
        raise ValueError(f"quantise expects uint8 frames, got {frames.dtype}")
    step = 255 // (levels - 1)
    return torch.div(frames.long() + step // 2, step, rounding_mode="floor")


def dequantise(levels_: torch.Tensor, levels: int = 16) -> torch.Tensor:
    """long levels in [0, levels) -> uint8 pixels (level * 255 / (levels - 1), exact)."""
    return (levels_ * (255 // (levels - 1))).to(torch.uint8)


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 frames (..., H, W, C) with H = W -> (..., size, size, C): the rounded mean of each
    block when shrinking (as MovingMNIST-v0's image_size), nearest neighbour when growing."""
    side = frames.shape[-2]
    if frames.shape[-3] != side:
        raise ValueError(f"frames must be square (..., H, W, C), got {tuple(frames.shape)}")
    if side == size:
        return frames
    if side % size == 0:
        f = side // size
        blocks = frames.float().unflatten(-3, (size, f)).unflatten(-2, (size, f))
        return blocks.mean(dim=(-4, -2)).round().to(torch.uint8)
    if size % side == 0:
        f = size // side
        return frames.repeat_interleave(f, dim=-3).repeat_interleave(f, dim=-2)
    raise ValueError(f"cannot resize {side}x{side} frames to {size}x{size}: sizes must divide")


def patchify(levels_: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(..., H, W, C) -> (..., N, P) with N = (H / p)(W / p) row-major, P = p * p * C."""
    *lead, h, w, c = levels_.shape
    g, p = h // patch_size, patch_size
    x = levels_.reshape(*lead, g, p, w // p, p, c).transpose(-4, -3)  # (..., g, g, p, p, C)
    return x.reshape(*lead, g * (w // p), p * p * c)


def unpatchify(tokens: torch.Tensor, patch_size: int, channels: int) -> torch.Tensor:
    """(..., N, P) -> (..., H, W, C), the inverse of `patchify` for square frames."""
    *lead, n, _ = tokens.shape
    g, p = math.isqrt(n), patch_size
    x = tokens.reshape(*lead, g, g, p, p, channels).transpose(-4, -3)
    return x.reshape(*lead, g * p, g * p, channels)


class FactorisedBlock(nn.Module):
    """Spatial attention within each frame, temporal attention at each position, SwiGLU MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden_dim: int | None) -> None:
        super().__init__()
        self.space_norm = RMSNorm(dim)
        self.space_attn = Attention(dim, num_heads)
        self.time_norm = RMSNorm(dim)
        self.time_attn = Attention(dim, num_heads)
        self.mlp_norm = RMSNorm(dim)
        self.mlp = SwiGLU(dim, mlp_hidden_dim)

    def forward(
        self,
        x: torch.Tensor,
        time_mask: torch.Tensor | None,
        is_causal: bool,
        past_kv: KV | None,
        space_rope: Rope | None = None,
        time_rope: Rope | None = None,
    ) -> tuple[torch.Tensor, KV]:
        """x (B, T, N, D); time_mask (B, T, T_past + T) bool or None -> (x, temporal (k, v))."""
        b, t, n, d = x.shape
        space = self.space_attn(self.space_norm(x).reshape(b * t, n, d), space_rope)
        x = x + space.view(b, t, n, d)
        xt = self.time_norm(x).transpose(1, 2).reshape(b * n, t, d)  # (B N, T, D)
        mask = None if time_mask is None else time_mask.repeat_interleave(n, dim=0)[:, None]
        out, kv = self.time_attn(xt, time_rope, mask, is_causal, past_kv, return_kv=True)
        x = x + out.view(b, n, t, d).transpose(1, 2)
        return x + self.mlp(self.mlp_norm(x)), kv


class MaskedVideoModel(nn.Module):
    """Predicts every pixel level of every token from partly masked, action-labelled frames."""

    def __init__(self, config: MaskedVideoConfig) -> None:
        super().__init__()
        self.config = c = config
        self.mask_id = c.levels
        self.pixel_embed = nn.Embedding(c.pixels_per_token * (c.levels + 1), c.dim)
        nn.init.normal_(self.pixel_embed.weight, std=0.02)
        self.register_buffer(
            "pixel_offsets", torch.arange(c.pixels_per_token) * (c.levels + 1), persistent=False
        )
        self.space_pos = nn.Parameter(torch.randn(c.tokens_per_frame, c.dim) * 0.02)
        self.time_pos = nn.Parameter(torch.randn(c.max_frames, c.dim) * 0.02)
        self.action_encoder = ActionEncoder(c.action_spec, c.dim)
        for param in self.action_encoder.parameters():  # as small as the other embeddings
            nn.init.normal_(param, std=0.02)
        head_dim = c.dim // c.num_heads
        self.space_rope = RotaryEmbedding(head_dim, num_axes=2) if c.rope else None
        self.time_rope = RotaryEmbedding(head_dim) if c.rope else None
        rows = torch.arange(c.grid).repeat_interleave(c.grid)
        self.register_buffer(
            "token_rc",
            torch.stack([rows, torch.arange(c.grid).repeat(c.grid)], 1),
            persistent=False,
        )
        self.blocks = nn.ModuleList(
            FactorisedBlock(c.dim, c.num_heads, c.mlp_hidden_dim) for _ in range(c.depth)
        )
        self.out_norm = RMSNorm(c.dim)
        self.head = nn.Linear(c.dim, c.pixels_per_token * c.levels)

    def frames_to_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (..., H, W, C) at the model's size -> tokens (..., N, P) of levels."""
        c = self.config
        want = (c.image_size, c.image_size, c.channels)
        if frames.dtype != torch.uint8 or tuple(frames.shape[-3:]) != want:
            raise ValueError(
                f"expected uint8 frames (..., {c.image_size}, {c.image_size}, {c.channels}), "
                f"got {frames.dtype} {tuple(frames.shape)}; resize with "
                "world_models.masked_video.resize_frames"
            )
        return patchify(quantise(frames, c.levels), c.patch_size)

    def tokens_to_frames(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (..., N, P) of levels (no [MASK]) -> uint8 frames (..., H, W, C)."""
        if (tokens >= self.mask_id).any():
            raise ValueError("tokens still hold [MASK]: decode every token before converting")
        c = self.config
        return dequantise(unpatchify(tokens, c.patch_size, c.channels), c.levels)

    def forward(
        self,
        tokens: torch.Tensor,
        action: torch.Tensor,
        labeled: torch.Tensor | None = None,
        time_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        start: int = 0,
        past_kv: list[KV] | None = None,
    ) -> tuple[torch.Tensor, list[KV]]:
        """Logits for every pixel of every token, and each block's temporal (k, v).

        tokens (B, T, N, P) long in [0, levels], `levels` = [MASK]; action (B, T, ...) and
        labeled (B, T) bool (None: all labeled); frames take temporal positions start .. start
        + T - 1. time_mask (B, T, T_past + T) bool: which frames each frame may attend to (None:
        all, or causal with `is_causal`); past_kv: per block, cached (k, v) of T_past earlier
        frames, each (B N, heads, T_past, head_dim). Returns logits (B, T, N, P, levels) and the
        per-block (k, v) of past + new frames.
        """
        c = self.config
        b, t, n, p = tokens.shape
        if (n, p) != (c.tokens_per_frame, c.pixels_per_token):
            raise ValueError(
                f"tokens must be (B, T, {c.tokens_per_frame}, {c.pixels_per_token}), "
                f"got {tuple(tokens.shape)}"
            )
        if tuple(action.shape[:2]) != (b, t):
            raise ValueError(
                f"action must be (B, T, ...) = ({b}, {t}, ...) like the tokens "
                f"{tuple(tokens.shape)}, got {tuple(action.shape)}"
            )
        if start < 0 or start + t > c.max_frames:
            raise ValueError(
                f"frames at positions {start}..{start + t - 1} exceed max_frames={c.max_frames}"
            )
        if tokens.min() < 0 or tokens.max() > self.mask_id:
            raise ValueError(f"token values must be in [0, {self.mask_id}] ({self.mask_id}=MASK)")
        x = self.pixel_embed(tokens + self.pixel_offsets).sum(-2)  # (B, T, N, D)
        x = x + self.space_pos + self.time_pos[start : start + t, None]
        x = x + self.action_encoder(action, labeled)[:, :, None]
        space_rope = time_rope = None
        if self.space_rope is not None and self.time_rope is not None:
            space_rope = self.space_rope(self.token_rc)
            time_rope = self.time_rope(torch.arange(start, start + t, device=x.device))
        new_kv = []
        for i, block in enumerate(self.blocks):
            past = None if past_kv is None else past_kv[i]
            x, kv = block(x, time_mask, is_causal, past, space_rope, time_rope)
            new_kv.append(kv)
        logits = self.head(self.out_norm(x)).view(b, t, n, p, c.levels)
        return logits, new_kv

    def loss(
        self, frames: torch.Tensor, action: torch.Tensor, labeled: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss on uint8 frames (B, T, H, W, C): see `world_models.masked_video_loss`."""
        from world_models.masked_video_loss import masked_video_loss

        return masked_video_loss(self, frames, action, labeled)
