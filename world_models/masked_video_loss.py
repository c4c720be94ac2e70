"""Training objective of the masked video model (CoPilot4D, ICLR 2024).

Each sequence of a batch draws one of three objectives (probabilities p_future, p_joint,
p_single of the config):

- future: the first `c` frames (c uniform in 1 .. T - 1) are given clean, the rest are the
  targets; temporal attention is causal, so a frame never sees a later one;
- joint: every frame is a target; temporal attention is bidirectional;
- single: every frame is a target and attends only to itself in time, with no action (the
  unconditional model used for classifier-free guidance).

Masking (MaskGIT as discrete diffusion): per sequence, u ~ U(0, 1) and ceil(cos(u pi / 2) M)
of its M target tokens become [MASK]; then a share r ~ U(0, corrupt_max) of the remaining target
tokens is replaced by random tokens (tokens drawn from anywhere in the batch, so they look like
real patches). Loss: cross-entropy with label smoothing on every pixel of every target token
(the model must also spot corrupted tokens); context frames carry no loss.

Context corruption (`context_corrupt_max`, not in CoPilot4D): a share r ~ U(0, max) of the clean
context tokens of the future objective is also replaced by random tokens, so the model learns
to read imperfect past frames, as its own are when it rolls out (the discrete counterpart of
noise augmentation of context frames in DIAMOND, GameNGen and Dreamer 4).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

OBJECTIVES = ("future", "joint", "single")
FUTURE, JOINT, SINGLE = range(3)


def time_masks(objectives: torch.Tensor, num_frames: int) -> torch.Tensor:
    """objectives (B,) in {FUTURE, JOINT, SINGLE} -> (B, T, T) bool, True where frame i may
    attend to frame j: causal, all, or only itself."""
    i = torch.arange(num_frames, device=objectives.device)
    causal = i[:, None] >= i[None, :]
    eye = i[:, None] == i[None, :]
    full = torch.ones_like(causal)
    options = torch.stack([causal, full, eye])  # indexed by objective
    return options[objectives]


def target_frames(
    objectives: torch.Tensor, num_frames: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, T) bool: the frames that are masked and scored. Future: frames >= c, c ~ U{1..T-1}
    (every frame when T = 1); joint and single: every frame."""
    b, device = objectives.shape[0], objectives.device
    context = torch.randint(1, max(2, num_frames), (b,), generator=generator, device=device)
    context = torch.where(objectives == FUTURE, context, torch.zeros_like(context))
    if num_frames == 1:
        context = torch.zeros_like(context)
    return torch.arange(num_frames, device=device)[None] >= context[:, None]


def mask_tokens(
    tokens: torch.Tensor,
    targets: torch.Tensor,
    mask_id: int,
    corrupt_max: float,
    generator: torch.Generator | None = None,
    context_corrupt_max: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask and corrupt target tokens, and corrupt a share r ~ U(0, context_corrupt_max) of
    context tokens. tokens (B, T, N, P), targets (B, T) bool -> (inputs (B, T, N, P), masked
    (B, T, N) bool)."""
    b, t, n, _ = tokens.shape
    device = tokens.device
    is_target = targets[:, :, None].expand(b, t, n).reshape(b, t * n)
    count = is_target.sum(1)  # (B,) target tokens per sequence
    u = torch.rand(b, generator=generator, device=device)
    n_mask = torch.ceil(torch.cos(u * math.pi / 2) * count).clamp(min=1).long()
    scores = torch.rand(b, t * n, generator=generator, device=device)
    scores = torch.where(is_target, scores, torch.full_like(scores, 2.0))  # non-targets last
    rank = scores.argsort(1).argsort(1)
    masked = rank < n_mask[:, None]  # (B, T N): the n_mask lowest-scoring target tokens
    share = torch.rand(b, 1, generator=generator, device=device) * corrupt_max
    corrupt = (torch.rand(b, t * n, generator=generator, device=device) < share) & is_target
    corrupt &= ~masked
    share = torch.rand(b, 1, generator=generator, device=device) * context_corrupt_max
    corrupt |= (torch.rand(b, t * n, generator=generator, device=device) < share) & ~is_target
    flat = tokens.reshape(b * t * n, -1)
    donors = torch.randint(0, b * t * n, (b, t * n), generator=generator, device=device)
    inputs = torch.where(corrupt[..., None], flat[donors], tokens.reshape(b, t * n, -1))
    inputs = torch.where(masked[..., None], torch.full_like(inputs, mask_id), inputs)
    return inputs.view_as(tokens), masked.view(b, t, n)


def masked_video_loss(
    model: torch.nn.Module,
    frames: torch.Tensor,
    action: torch.Tensor,
    labeled: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss and metrics of `model` (a MaskedVideoModel) on uint8 frames (B, T, H, W, C) at its
    image size, actions (B, T, ...) and labeled (B, T) bool.

    Sequences shorter than max_frames sit at a random temporal offset, so every temporal
    position embedding is trained. Metrics: `acc` is the share of masked tokens whose every
    pixel level is predicted exactly (argmax), `pixel_acc` the share of their pixels.
    """
    c = model.config
    tokens = model.frames_to_tokens(frames)  # (B, T, N, P)
    b, t = tokens.shape[:2]
    if t > c.max_frames:
        raise ValueError(f"sequences of {t} frames exceed max_frames={c.max_frames}")
    device = tokens.device
    probs = torch.tensor([c.p_future, c.p_joint, c.p_single], device=device)
    objectives = torch.multinomial(probs / probs.sum(), b, replacement=True, generator=generator)
    targets = target_frames(objectives, t, generator)
    inputs, masked = mask_tokens(
        tokens, targets, model.mask_id, c.corrupt_max, generator, c.context_corrupt_max
    )
    keep = torch.rand(b, t, generator=generator, device=device) >= c.action_dropout
    labeled = labeled.bool() & keep & (objectives != SINGLE)[:, None]
    start = int(torch.randint(0, c.max_frames - t + 1, (1,), generator=generator, device=device))
    logits, _ = model(inputs, action, labeled, time_masks(objectives, t), start=start)
    ce = F.cross_entropy(
        logits.flatten(0, -2).float(),
        tokens.flatten(),
        label_smoothing=c.label_smoothing,
        reduction="none",
    ).view_as(tokens)  # (B, T, N, P)
    weight = targets[:, :, None, None].expand_as(ce).float()
    loss = (ce * weight).sum() / weight.sum()
    with torch.no_grad():
        right = logits.argmax(-1) == tokens  # (B, T, N, P)
        n_masked = masked.sum().clamp(min=1)
        metrics = {
            "acc": ((right.all(-1) & masked).sum() / n_masked).item(),
            "pixel_acc": (
                (right & masked[..., None]).sum() / (n_masked * c.pixels_per_token)
            ).item(),
            "mask_share": (masked.sum() / (targets.sum() * c.tokens_per_frame)).item(),
        }
    return loss, metrics
