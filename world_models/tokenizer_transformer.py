"""Causal transformer video tokenizer (Dreamer 4 style).

Encoder: each frame is cut into P = (H / patch)^2 patches; patch embeddings (plus a learned
position embedding per patch), N learned latent tokens and R register tokens form the frame's
S = P + N + R tokens. A space-time transformer mixes them and the N latent tokens leave through
a linear + tanh bottleneck: latents (B, T, N, D) in [-1, 1].

Decoder: the latents are projected up (plus a learned embedding per latent index) and read by
P learned patch queries (one per patch position) and R registers through the same space-time
transformer; a linear head maps each patch query to its pixels, squashed to [0, 1] by a sigmoid.

Time: the transformer is factorised. Every layer is a pre-norm block attending over space (all S
tokens of one frame); every `time_every`-th layer also has an attention sublayer over time (each
token position attends to itself in the same and earlier frames, causal mask, RoPE on the frame
index). Stacked, a frame's tokens see all tokens of the same and earlier frames and never later
ones: block-causal over time, so frame t's latents and reconstruction depend only on frames <= t.

MAE patch dropout: in training mode `forward` draws p ~ U(0, mask_ratio_max) per frame and
replaces floor(p * P) random patch embeddings of that frame by a learned mask embedding (the
position embedding is still added, so the encoder knows where the hole is). Replacing rather
than dropping keeps every frame at S tokens, so ratios can differ per frame within one batch.
`encode` masks only when given an explicit mask; it never masks at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from world_models.dynamics_state import DynamicsState
from world_models.layers import KV, Attention, RMSNorm, Rope, RotaryEmbedding, TransformerBlock
from world_models.tokenizer import Tokenizer, check_video, video_to_float


@dataclass
class TransformerTokenizerConfig:
    """Sizes of a `TransformerTokenizer`; every field is JSON-serialisable."""

    image_size: int = 64  # H = W
    channels: int = 3  # C
    patch_size: int = 8  # P = (image_size / patch_size)^2 patches per frame
    num_latents: int = 32  # N latent tokens per frame
    latent_dim: int = 16  # D, bottleneck width of each latent token
    num_registers: int = 4  # R register tokens per frame (encoder and decoder each)
    dim: int = 256  # transformer width
    encoder_depth: int = 4
    decoder_depth: int = 4
    num_heads: int = 4
    num_kv_heads: int | None = None  # GQA; None = num_heads
    time_every: int = 2  # every k-th layer adds causal attention over time (space: every layer)
    soft_cap: float | None = None  # attention logit soft-capping (slower manual attention path)
    mask_ratio_max: float = 0.9  # MAE: per-frame mask ratio p ~ U(0, mask_ratio_max)
    context_length: int = 7  # past frames the decoder reads frame by frame (keep < train window)

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}"
            )
        if min(self.num_latents, self.latent_dim, self.encoder_depth, self.decoder_depth) < 1:
            raise ValueError("num_latents, latent_dim and the depths must be at least 1")
        if self.time_every < 1 or self.context_length < 1:
            raise ValueError(
                f"time_every and context_length must be >= 1, got {self.time_every} and "
                f"{self.context_length}"
            )
        if not 0.0 <= self.mask_ratio_max < 1.0:
            raise ValueError(f"mask_ratio_max must be in [0, 1), got {self.mask_ratio_max}")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def patchify(frames: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, T, H, W, C) -> (B, T, P, patch_size^2 * C), patches in row-major order."""
    b, t, h, w, c = frames.shape
    p = patch_size
    x = frames.reshape(b, t, h // p, p, w // p, p, c).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, t, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int) -> torch.Tensor:
    """(B, T, P, patch_size^2 * C) -> (B, T, H, W, C); inverse of `patchify` (square frames)."""
    b, t, num, _ = patches.shape
    side = round(num**0.5)
    p = patch_size
    x = patches.reshape(b, t, side, side, p, p, channels).permute(0, 1, 2, 4, 3, 5, 6)
    return x.reshape(b, t, side * p, side * p, channels)


def sample_mae_mask(
    batch: int,
    frames: int,
    num_patches: int,
    ratio_max: float,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Boolean (B, T, P) mask, True = patch dropped: per frame, floor(p * P) random patches with
    p ~ U(0, ratio_max), so each frame's masked share lies in [0, ratio_max]."""
    ratio = torch.rand(batch, frames, 1, device=device, generator=generator) * ratio_max
    count = torch.floor(ratio * num_patches)
    scores = torch.rand(batch, frames, num_patches, device=device, generator=generator)
    rank = scores.argsort(dim=-1).argsort(dim=-1)  # a random permutation of 0..P-1 per frame
    return rank < count


class SpaceTimeTransformer(nn.Module):
    """Pre-norm layers over (B, T, S, dim). Every layer is a `TransformerBlock` attending within
    a frame (space); every `time_every`-th layer first adds a residual attention sublayer over
    time, causal per token position with RoPE on the frame index (no time layer when
    time_every > depth: frames are then encoded independently)."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        time_every: int,
        num_kv_heads: int | None = None,
        soft_cap: float | None = None,
    ) -> None:
        super().__init__()
        self.space = nn.ModuleList(
            TransformerBlock(dim, num_heads, num_kv_heads, soft_cap=soft_cap) for _ in range(depth)
        )
        self.time = nn.ModuleDict(  # layer index -> (norm, attention) of its time sublayer
            {
                str(i): nn.ModuleList(
                    (RMSNorm(dim), Attention(dim, num_heads, num_kv_heads, soft_cap=soft_cap))
                )
                for i in range(depth)
                if (i + 1) % time_every == 0
            }
        )
        self.rope = RotaryEmbedding(dim // num_heads)
        self.norm = RMSNorm(dim)

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
        past: list[KV] | None = None,
        return_kv: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[KV]]:
        """x (B, T, S, dim) -> (B, T, S, dim); with return_kv also the (k, v) of every time
        layer, past keys first, each (B*S, H_kv, L + T, head_dim).

        positions: frame positions (T,) or (B, T) (default 0..T-1). past: cached (k, v) per
        time layer, each (B*S, H_kv, L, head_dim). valid: (B, L + T) bool, False where a row's
        cache is left padding (see `DynamicsState`).
        """
        b, t, s, d = x.shape
        if positions is None:
            positions = torch.arange(t, device=x.device)
        rope = self.rope(positions)
        if positions.ndim == 2:  # per-row positions: one copy per token position, as (B*S)
            rope = Rope(*(r.repeat_interleave(s, dim=0) for r in rope))
        mask = None if valid is None else valid.repeat_interleave(s, dim=0)[:, None, None, :]
        new_kv: list[KV] = []
        for i, block in enumerate(self.space):
            if str(i) in self.time:
                norm, attn = self.time[str(i)]
                layer_past = past[len(new_kv)] if past is not None else None
                y = x.transpose(1, 2).reshape(b * s, t, d)  # one sequence over time per token
                out = attn(norm(y), rope, mask, True, past_kv=layer_past, return_kv=True)
                y = y + out[0]
                new_kv.append(out[1])
                x = y.view(b, s, t, d).transpose(1, 2)
            x = block(x.reshape(b * t, s, d)).view(b, t, s, d)
        x = self.norm(x)
        return (x, new_kv) if return_kv else x


def _embedding(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * 0.02)


class TransformerTokenizer(Tokenizer):
    """Causal transformer tokenizer: video (B, T, H, W, C) <-> latents (B, T, N, D) in [-1, 1]."""

    def __init__(self, config: TransformerTokenizerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.num_latents = c.num_latents
        self.latent_dim = c.latent_dim
        patch_pixels = c.patch_size**2 * c.channels
        stack = dict(
            dim=c.dim,
            num_heads=c.num_heads,
            time_every=c.time_every,
            num_kv_heads=c.num_kv_heads,
            soft_cap=c.soft_cap,
        )
        # encoder
        self.patch_embed = nn.Linear(patch_pixels, c.dim)
        self.patch_pos = _embedding(c.num_patches, c.dim)
        self.mask_token = _embedding(c.dim)
        self.latent_tokens = _embedding(c.num_latents, c.dim)
        self.encoder_registers = _embedding(c.num_registers, c.dim)
        self.encoder = SpaceTimeTransformer(depth=c.encoder_depth, **stack)
        self.bottleneck = nn.Linear(c.dim, c.latent_dim)
        # decoder
        self.latent_in = nn.Linear(c.latent_dim, c.dim)
        self.latent_pos = _embedding(c.num_latents, c.dim)
        self.patch_queries = _embedding(c.num_patches, c.dim)
        self.decoder_registers = _embedding(c.num_registers, c.dim)
        self.decoder = SpaceTimeTransformer(depth=c.decoder_depth, **stack)
        self.pixel_head = nn.Linear(c.dim, patch_pixels)

    def sample_mask(
        self, batch: int, frames: int, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """A fresh MAE mask (B, T, P), True = dropped; see `sample_mae_mask`."""
        c = self.config
        return sample_mae_mask(batch, frames, c.num_patches, c.mask_ratio_max, device)

    def encode(self, video: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, H, W, C) uint8 or float in [0, 1] -> latents (B, T, N, D) in [-1, 1].

        mask: optional boolean (B, T, P), True where a patch is replaced by the mask embedding;
        without it nothing is masked.
        """
        c = self.config
        check_video(video, c.image_size, c.channels)
        b, t = video.shape[:2]
        x = patchify(video_to_float(video) * 2.0 - 1.0, c.patch_size)
        x = self.patch_embed(x)  # (B, T, P, dim)
        if mask is not None:
            if tuple(mask.shape) != (b, t, c.num_patches) or mask.dtype != torch.bool:
                raise ValueError(
                    f"mask must be boolean of shape {(b, t, c.num_patches)}, "
                    f"got {mask.dtype} {tuple(mask.shape)}"
                )
            x = torch.where(mask.unsqueeze(-1), self.mask_token.to(x.dtype), x)
        x = x + self.patch_pos
        extra = torch.cat((self.latent_tokens, self.encoder_registers)).to(x.dtype)
        x = torch.cat((x, extra.expand(b, t, -1, -1)), dim=2)  # (B, T, P + N + R, dim)
        x = self.encoder(x)
        latents = x[:, :, c.num_patches : c.num_patches + c.num_latents]
        return torch.tanh(self.bottleneck(latents))

    @property
    def decodes_in_context(self) -> bool:
        """Whether the decoder attends over time, so a frame's pixels depend on earlier latents."""
        return bool(self.decoder.time)

    def _decoder_tokens(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, T, N, D) -> decoder tokens (B, T, P + R + N, dim)."""
        c = self.config
        if latents.ndim != 4 or tuple(latents.shape[2:]) != (c.num_latents, c.latent_dim):
            raise ValueError(
                f"expected latents of shape (B, T, {c.num_latents}, {c.latent_dim}), "
                f"got {tuple(latents.shape)}"
            )
        b, t = latents.shape[:2]
        z = self.latent_in(latents.to(self.latent_in.weight.dtype)) + self.latent_pos  # (B,T,N,dim)
        queries = torch.cat((self.patch_queries, self.decoder_registers)).to(z.dtype)
        return torch.cat((queries.expand(b, t, -1, -1), z), dim=2)

    def _pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder output (B, T, S, dim) -> video (B, T, H, W, C) in [0, 1]."""
        c = self.config
        patches = torch.sigmoid(self.pixel_head(x[:, :, : c.num_patches]))
        return unpatchify(patches, c.patch_size, c.channels)

    def decoder_parameters(self) -> list[nn.Parameter]:
        embeddings = [self.latent_pos, self.patch_queries, self.decoder_registers]
        layers = (self.latent_in, self.decoder, self.pixel_head)
        return embeddings + [p for layer in layers for p in layer.parameters()]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, T, N, D) -> video (B, T, H, W, C) float in [0, 1]."""
        return self._pixels(self.decoder(self._decoder_tokens(latents)))

    @torch.no_grad()
    def decode_start(self, latents: torch.Tensor) -> tuple[torch.Tensor, DynamicsState]:
        """Decode a rollout's first frames, latents (B, T0, N, D) -> (video (B, T0, H, W, C),
        the decoder's KV cache of the last `context_length` of them, for `decode_next`)."""
        x, kv = self.decoder(self._decoder_tokens(latents), return_kv=True)
        b, t = latents.shape[:2]
        keep = min(t, self.config.context_length)
        kv = [(k[:, :, -keep:], v[:, :, -keep:]) for k, v in kv]
        valid = torch.ones(b, keep, dtype=torch.bool, device=latents.device)
        position = torch.full((b,), t, dtype=torch.long, device=latents.device)
        return self._pixels(x), DynamicsState(kv, valid, position)

    @torch.no_grad()
    def decode_next(
        self, latents: torch.Tensor, cache: DynamicsState
    ) -> tuple[torch.Tensor, DynamicsState]:
        """Decode each rollout's next frame, latents (B, N, D), reading the frames in `cache`:
        -> (frames (B, H, W, C), the cache with this frame, at most `context_length` kept).
        Equal to `decode` of the whole window's latents while the window fits the cache."""
        x, kv = self.decoder(
            self._decoder_tokens(latents[:, None]),
            cache.position[:, None],
            cache.attend_mask(),
            cache.kv,
            return_kv=True,
        )
        return self._pixels(x)[:, 0], cache.advance(kv, self.config.context_length)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Reconstruction (B, T, H, W, C) in [0, 1]; MAE patch dropout in training mode only."""
        check_video(video, self.config.image_size, self.config.channels)
        mask = self.sample_mask(*video.shape[:2], video.device) if self.training else None
        return self.decode(self.encode(video, mask))
