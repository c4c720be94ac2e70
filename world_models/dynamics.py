"""Dreamer 4-style dynamics model: shortcut forcing over tokenizer latents, with reward and
continue heads on agent tokens and KV-cached few-step inference.

Data alignment (the dataset sequence view): step t has latents[t] (of obs[t]); action[t] led to
obs[t] (meaningless at t = 0); reward[t] was received on arriving at obs[t]; labeled[t] is False
at t = 0 and for unlabeled video (then the learned no-action embedding is used). Frame t is
generated from past frames and action[t]; its agent token predicts reward[t] and 1 - terminal[t].

Heads read the agent tokens of the same forward pass as the denoising loss (as in the paper),
so in training they see frames at every noise level. At inference they read the agent token of
the pass that writes the finished frame into the cache, with that frame re-noised to tau_ctx.

Cache and positions: `start` keeps the last `context_length` context frames (frame positions
0..T0-1); each `step` adds one frame at the next position and drops the oldest beyond
`context_length` (a sliding window). Keys are cached already rotated by RoPE, so only position
differences matter (angles are computed in float64, exact for long rollouts). As with any
sliding window, cached keys of a frame were computed while it could see its own past, so after
the window slides the result differs from a fresh forward over just the window.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from world_models.action_encoder import spec_to_space
from world_models.dynamics_state import DynamicsState
from world_models.dynamics_transformer import SpaceTimeTransformer
from world_models.heads import ContinueHead, RewardHead
from world_models.shortcut import (
    SAMPLERS,
    Generators,
    add_noise,
    check_k_max,
    ramp_weight,
    randn,
    sample,
    sample_tau_d,
    shortcut_target,
)
from world_models.traced_passes import TracedPasses


@dataclass
class DynamicsConfig:
    """Settings of the dynamics model; every field is JSON-serialisable."""

    action_spec: dict[str, Any]  # from world_models.action_encoder.space_to_spec
    num_latents: int = 16  # N latent tokens per frame (from the tokenizer)
    latent_dim: int = 32  # D, width of each latent token
    dim: int = 256  # model width
    depth: int = 8
    num_heads: int = 4
    num_kv_heads: int = 2  # GQA
    mlp_hidden_dim: int | None = None  # None: 8/3 * dim
    time_attention_every: int = 4  # causal time attention in layers k-1, 2k-1, ...
    num_registers: int = 4
    num_agent_tokens: int = 1
    # Also add each frame's action embedding to its latent tokens (as DIAMOND / Genie condition
    # every token); False is the paper: actions enter only through their own token.
    action_in_latents: bool = False
    attn_soft_cap: float | None = 50.0  # attention logit soft-capping (paper); None: fast path
    k_max: int = 64  # finest step d_min = 1 / k_max
    context_length: int = 32  # frames kept in the KV cache at inference
    tau_ctx: float = 0.9  # signal level of context frames at inference (10% noise)
    num_sampling_steps: int = 4  # K shortcut steps per generated frame
    # "renoise": fresh noise at every sub-step; "euler": the shortcut step from one draw
    sampler: str = "renoise"
    # The step size each sub-step's prediction is conditioned on: "step" (the paper) the
    # sub-step's own d = 1 / K; "finest" d_min = 1 / k_max, the prediction the flow loss
    # trains (most of the training frames with flow_share 0.75) at the same K sub-steps.
    sample_d: str = "step"
    ramp_weight: bool = True  # w(tau) = 0.9 tau + 0.1; False: uniform weight
    # Share of training frames set to d = d_min (the flow loss) before the rest draw
    # d = 1 / U{1, 2, 4, ..., K_max} (so a share s puts s + (1 - s) / (log2 K_max + 1) at
    # d_min). 0 is the paper. Small models learn to follow their actions far sooner with 0.75
    # (the shortcut-models paper's share) and ramp_weight False (experiments/bench/action_toy.py).
    flow_share: float = 0.0
    # Share of training frames set to (tau_ctx, d_min), the inference context, instead of their
    # own (tau, d). 0 is the paper's pure diffusion forcing; ~0.5 speeds up small models.
    context_prob: float = 0.0
    # Extra loss weight on the latent tokens that changed since the previous frame: token n of
    # frame t weighs 1 + motion_weight where latents[t, n] != latents[t - 1, n], else 1, and
    # each frame's weights are normalised to mean 1 (its share of the loss is unchanged). 0 is
    # the paper. Where one small moving object (a MiniGrid agent) is most of the error but 1 of
    # N tokens, this puts the loss where the dynamics are.
    motion_weight: float = 0.0
    # Share of labeled training frames whose action is hidden (the no-action embedding), so the
    # model also learns to predict a frame without its action, as classifier-free guidance
    # needs. 0 is the paper.
    action_dropout: float = 0.0
    # Classifier-free guidance on the action at inference: every shortcut sub-step predicts
    # x_cond + guidance * (x_cond - x_uncond), x_uncond with the new frame's action hidden (past
    # frames keep theirs). 0 (off) is the paper. Train with action_dropout so the no-action
    # prediction is learned mid-episode; otherwise only episodes' first frames teach it.
    guidance: float = 0.0
    # Average the clean latents of this many samples of each frame, drawn in parallel from
    # the same past: an estimate of the posterior mean, which scores higher PSNR and is
    # blurrier where the future is uncertain. 1 (one sample) is the paper.
    sample_mean: int = 1
    reward_bins: int = 255
    reward_low: float = -20.0  # bin range in symlog space
    reward_high: float = 20.0
    reward_loss_scale: float = 1.0
    continue_loss_scale: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes, ignored by the model

    def __post_init__(self) -> None:
        spec_to_space(self.action_spec)
        problems = self._count_problems()
        if problems:  # the checks below divide by these counts
            raise ValueError("bad DynamicsConfig: " + "; ".join(problems))
        check_k_max(self.k_max)
        if self.dim % self.num_heads or self.num_heads % self.num_kv_heads:
            problems.append("dim must divide by num_heads and num_heads by num_kv_heads")
        if (self.dim // self.num_heads) % 2:
            problems.append("head width dim / num_heads must be even (RoPE)")
        if self.time_attention_every > self.depth:
            problems.append("time_attention_every must be between 1 and depth")
        if not 0.0 <= self.tau_ctx <= 1.0:
            problems.append("tau_ctx must be in [0, 1] (1 = clean)")
        if not 0.0 <= self.context_prob < 1.0:
            problems.append("context_prob must be in [0, 1)")
        if not 0.0 <= self.flow_share < 1.0:
            problems.append("flow_share must be in [0, 1) (some frames must train larger steps)")
        if self.motion_weight < 0:
            problems.append("motion_weight must be >= 0")
        if not 0.0 <= self.action_dropout < 1.0:
            problems.append("action_dropout must be in [0, 1)")
        if self.guidance < 0:
            problems.append("guidance must be >= 0")
        k = self.num_sampling_steps
        if k > self.k_max or k & (k - 1):
            problems.append(f"num_sampling_steps must be a power of two in [1, k_max={self.k_max}]")
        if self.sampler not in SAMPLERS:
            problems.append(f"sampler must be one of {SAMPLERS}")
        if self.sample_d not in ("step", "finest"):
            problems.append('sample_d must be "step" or "finest"')
        if problems:
            raise ValueError("bad DynamicsConfig: " + "; ".join(problems))

    def _count_problems(self) -> list[str]:
        """What is wrong with the whole-number fields (sizes, counts) and the soft cap."""
        counts = ("num_latents", "latent_dim", "dim", "depth", "num_heads", "num_kv_heads")
        counts += ("num_agent_tokens", "k_max", "num_sampling_steps", "context_length")
        counts += ("time_attention_every", "sample_mean")
        problems = [
            f"{name} must be a whole number >= 1, got {getattr(self, name)!r}"
            for name in counts
            if not _is_count(getattr(self, name), 1)
        ]
        if not _is_count(self.reward_bins, 2):
            problems.append(f"reward_bins must be a whole number >= 2, got {self.reward_bins!r}")
        registers, hidden, cap = self.num_registers, self.mlp_hidden_dim, self.attn_soft_cap
        if not _is_count(registers, 0):
            problems.append(f"num_registers must be a whole number >= 0, got {registers!r}")
        if hidden is not None and not _is_count(hidden, 1):
            problems.append(f"mlp_hidden_dim must be None or a whole number >= 1, got {hidden!r}")
        number = isinstance(cap, int | float) and not isinstance(cap, bool)
        if cap is not None and not (number and 0 < cap < math.inf):
            problems.append(f"attn_soft_cap must be None or a finite number > 0, got {cap!r}")
        return problems

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DynamicsConfig:
        """Build from a dict (e.g. a bundle's config.json), rejecting unknown keys clearly."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown DynamicsConfig keys {unknown}; known: {sorted(names)}")
        return cls(**data)


def _is_count(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


MOTION_THRESHOLD = 1e-4  # mean squared latent change that counts a token as moved


def motion_token_weight(
    latents: torch.Tensor, motion_weight: float, is_first: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-token loss weights (B, T, N): 1 + motion_weight on tokens that changed since the
    previous frame of the same episode, normalised to mean 1 within each frame."""
    change = torch.zeros(latents.shape[:3], device=latents.device)
    change[:, 1:] = (latents[:, 1:] - latents[:, :-1]).float().pow(2).mean(-1)
    moved = change > MOTION_THRESHOLD
    if is_first is not None:
        moved &= ~is_first.bool()[:, :, None]
    weight = 1 + motion_weight * moved.float()
    return weight / weight.mean(-1, keepdim=True)


def episode_mask(is_first: torch.Tensor) -> torch.Tensor:
    """is_first (B, T) -> (B, T, T) bool: frame i may attend to frame j only in the same episode."""
    episode = torch.cumsum(is_first.long(), dim=1)
    return episode[:, :, None] == episode[:, None, :]


class Dynamics(nn.Module):
    """Action-conditioned latent dynamics with shortcut forcing, reward and continue heads."""

    def __init__(self, config: DynamicsConfig) -> None:
        super().__init__()
        self.config = config
        self.net = SpaceTimeTransformer(config)
        self.reward_head = RewardHead(
            config.dim, config.reward_bins, config.reward_low, config.reward_high
        )
        self.continue_head = ContinueHead(config.dim)
        self._traced: TracedPasses | None = None  # not a submodule: no weights of its own

    def trace_for_speed(self) -> None:
        """Run the inference passes that read the KV cache (`step`) through TorchScript
        traces: the same results with less per-op overhead (`world_models.traced_passes`)."""
        self._traced = TracedPasses(self.net)

    def _frame_net(self) -> Callable[..., tuple[torch.Tensor, torch.Tensor, list | None]]:
        """The network `step` runs: its traces after `trace_for_speed`, else the module."""
        return self._traced or self.net

    def forward(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Same as `loss` (so DistributedDataParallel can wrap the model)."""
        return self.loss(*args, **kwargs)

    def _check_latents(self, latents: torch.Tensor) -> None:
        n, d = self.config.num_latents, self.config.latent_dim
        if latents.ndim != 4 or tuple(latents.shape[2:]) != (n, d):
            raise ValueError(f"expected latents (B, T, {n}, {d}), got {tuple(latents.shape)}")
        if not latents.is_floating_point():
            raise ValueError(f"latents must be floating point, got {latents.dtype}")

    def _embed_actions(
        self, action: torch.Tensor, labeled: torch.Tensor | None, batch: tuple[int, ...]
    ) -> torch.Tensor:
        """Action embeddings (*batch, dim), checking the actions' batch shape."""
        emb = self.net.action(action, labeled)
        if tuple(emb.shape[:-1]) != batch:
            shape = tuple(torch.as_tensor(action).shape)
            raise ValueError(
                f"expected actions of shape ({', '.join(map(str, batch))}, *action shape), "
                f"got {shape}"
            )
        return emb

    def loss(
        self,
        latents: torch.Tensor,
        action: torch.Tensor,
        labeled: torch.Tensor,
        reward: torch.Tensor,
        is_terminal: torch.Tensor,
        generator: torch.Generator | None = None,
        is_first: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Shortcut-forcing + reward + continue loss on clean latents (B, T, N, D).

        action (B, T, ...), labeled/reward/is_terminal (B, T). is_first (B, T), optional: a
        window crossing episodes attends only within its episode, and first steps are not
        head targets (t = 0 never is, nor is an unlabeled step: its reward is unknown).
        Returns the loss and detached scalar metrics.
        """
        cfg = self.config
        self._check_latents(latents)
        b, t = latents.shape[:2]
        dev = latents.device
        for name, value in (("labeled", labeled), ("reward", reward), ("is_terminal", is_terminal)):
            if tuple(value.shape) != (b, t):
                raise ValueError(f"{name} must have shape ({b}, {t}), got {tuple(value.shape)}")
        # reward and continue targets count only where the step is labeled: unlabeled video
        # has no rewards (they are stored as 0); taken before action dropout hides actions
        head_mask = labeled.bool().clone()
        head_mask[:, 0] = False
        if cfg.action_dropout > 0:
            keep = torch.rand((b, t), generator=generator, device=dev) >= cfg.action_dropout
            labeled = labeled.bool() & keep
        action_emb = self._embed_actions(action, labeled, (b, t))
        tau, d = sample_tau_d((b, t), cfg.k_max, generator, dev, cfg.flow_share)
        if cfg.context_prob > 0:
            ctx = torch.rand((b, t), generator=generator, device=dev) < cfg.context_prob
            tau = torch.where(ctx, torch.full_like(tau, cfg.tau_ctx), tau)
            d = torch.where(ctx, torch.full_like(d, 1 / cfg.k_max), d)
        noise = torch.randn(latents.shape, generator=generator, device=dev, dtype=latents.dtype)
        z = add_noise(latents, tau, noise)
        time_mask = None
        if is_first is not None:
            time_mask = episode_mask(is_first)
            head_mask &= ~is_first.bool()

        def denoise(z_: torch.Tensor, tau_: torch.Tensor, d_: torch.Tensor) -> torch.Tensor:
            return self.net(z_, tau_, d_, action_emb, time_mask=time_mask)[0]

        target, boot = shortcut_target(denoise, latents, z, tau, d, cfg.k_max)
        x_hat, agent, _ = self.net(z, tau, d, action_emb, time_mask=time_mask)
        per_token = (x_hat.float() - target.float()).pow(2).mean(-1)  # (B, T, N)
        if cfg.motion_weight > 0:
            per_token = per_token * motion_token_weight(latents, cfg.motion_weight, is_first)
        per_frame = per_token.mean(-1)  # (B, T)
        weight = ramp_weight(tau) if cfg.ramp_weight else torch.ones_like(tau)
        dynamics_loss = (weight * per_frame).mean()

        reward_logits = self.reward_head(agent)
        continue_logit = self.continue_head(agent)
        count = head_mask.sum().clamp_min(1)
        reward_loss = (self.reward_head.loss(reward_logits, reward) * head_mask).sum() / count
        continue_loss = (self.continue_head.loss(continue_logit, is_terminal) * head_mask).sum()
        continue_loss = continue_loss / count
        loss = (
            dynamics_loss
            + cfg.reward_loss_scale * reward_loss
            + cfg.continue_loss_scale * continue_loss
        )
        with torch.no_grad():
            flow = ~boot
            reward_err = (self.reward_head.predict(reward_logits) - reward.float()).abs()
            continue_ok = (continue_logit > 0) == ~is_terminal.bool()
            metrics = {
                "loss": loss.detach(),
                "dynamics_loss": dynamics_loss.detach(),
                "flow_mse": (per_frame * flow).sum() / flow.sum().clamp_min(1),
                "bootstrap_mse": (per_frame * boot).sum() / boot.sum().clamp_min(1),
                "bootstrap_frac": boot.float().mean(),
                "reward_loss": reward_loss.detach(),
                "continue_loss": continue_loss.detach(),
                "reward_mae": (reward_err * head_mask).sum() / count,
                "continue_accuracy": (continue_ok * head_mask).sum() / count,
            }
        return loss, metrics

    @torch.no_grad()
    def start(
        self,
        context_latents: torch.Tensor,
        context_action: torch.Tensor,
        context_labeled: torch.Tensor,
        generator: Generators = None,
    ) -> DynamicsState:
        """Fill the KV cache from context frames (B, T0, N, D), re-noised to tau_ctx.

        Only the last `context_length` frames are kept. context_action (B, T0, ...),
        context_labeled (B, T0) bool (False at an episode's first frame). generator: one, or
        one per row (row i then draws exactly what it would draw alone).
        """
        cfg = self.config
        self._check_latents(context_latents)
        keep = min(context_latents.shape[1], cfg.context_length)
        latents = context_latents[:, -keep:]
        batch = tuple(context_latents.shape[:2])
        action_emb = self._embed_actions(context_action, context_labeled, batch)[:, -keep:]
        b, t = latents.shape[:2]
        dev = latents.device
        tau = torch.full((b, t), cfg.tau_ctx, device=dev)
        z = add_noise(latents, tau, randn(latents.shape, generator, dev, latents.dtype))
        _, _, kv = self.net(z, tau, torch.full_like(tau, 1 / cfg.k_max), action_emb, return_kv=True)
        valid = torch.ones(b, t, dtype=torch.bool, device=dev)
        return DynamicsState(kv, valid, torch.full((b,), t, device=dev, dtype=torch.long))

    @torch.no_grad()
    def step(
        self,
        state: DynamicsState,
        action: torch.Tensor,
        num_steps: int | None = None,
        generator: Generators = None,
        labeled: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, DynamicsState]:
        """Generate the next frame for each of the B rollouts given action (B, ...).

        K = num_steps (default config.num_sampling_steps) shortcut steps from fresh noise read
        the cache; the finished frame (clamped to [-1, 1]) is re-noised to tau_ctx and written
        once. generator: one, or one per row. labeled (B,) bool: False uses the no-action
        embedding. Returns latents (B, N, D), reward (B,), continue probability (B,), new state.
        """
        cfg = self.config
        b = state.batch_size
        dev = state.valid.device
        action_emb = self._embed_actions(action, labeled, (b,)).unsqueeze(1)  # (B, 1, dim)
        latents = self._sample_frame(
            state, action_emb, num_steps or cfg.num_sampling_steps, generator
        )
        tau_ctx = torch.full((b,), cfg.tau_ctx, device=dev)
        noise = randn(latents.shape, generator, dev, latents.dtype)
        d_min = torch.full_like(tau_ctx, 1 / cfg.k_max)
        z = add_noise(latents, tau_ctx, noise)[:, None]
        _, agent, kv = self._frame_net()(
            z, tau_ctx[:, None], d_min[:, None], action_emb, *self._past(state), return_kv=True
        )
        agent = agent[:, 0]
        reward = self.reward_head.predict(self.reward_head(agent)).float()
        cont = torch.sigmoid(self.continue_head(agent).float())
        return latents.float(), reward, cont, state.advance(kv, cfg.context_length)

    def _sample_frame(
        self, state: DynamicsState, action_emb: torch.Tensor, k: int, generator: Generators
    ) -> torch.Tensor:
        """Clean latents (B, N, D) of one new frame per row in K shortcut steps: one sample,
        or with sample_mean M the mean of M samples, each in a copy of the row that reads its
        past and draws from its generator."""
        cfg = self.config
        m = cfg.sample_mean
        if m > 1:
            state, action_emb = state.repeated(m), action_emb.repeat_interleave(m, 0)
            if generator is not None and not isinstance(generator, torch.Generator):
                generator = [g for g in generator for _ in range(m)]
        shape = (state.batch_size, cfg.num_latents, cfg.latent_dim)
        denoise = self._denoiser(state, action_emb)
        told_d = 1 / cfg.k_max if cfg.sample_d == "finest" else None
        dev = state.valid.device
        latents = sample(denoise, shape, k, cfg.k_max, generator, cfg.sampler, dev, told_d)
        if m > 1:
            latents = latents.unflatten(0, (-1, m)).mean(1)
        return latents.clamp(-1, 1)

    @staticmethod
    def _past(state: DynamicsState) -> tuple[torch.Tensor, torch.Tensor | None, list]:
        """What a new frame's pass reads of `state`: positions (B, 1), the time mask
        (B, 1, L + 1) or None, and the KV cache."""
        mask = state.attend_mask()
        return state.position[:, None], None if mask is None else mask[:, None, :], state.kv

    def _denoiser(
        self, state: DynamicsState, action_emb: torch.Tensor
    ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
        """denoise(z, tau, d) -> x_hat (B, N, D) of one new frame per row of `state`, with
        action_emb (B, 1, dim). With guidance w: x_cond + w (x_cond - x_uncond), x_uncond with
        the new frame's action hidden (the no-action embedding), both in one doubled pass."""
        net, w = self._frame_net(), self.config.guidance
        positions, mask, kv = self._past(state)
        if w > 0:  # B more rows, the same frames without their action
            no_action = self.net.action.no_action.to(action_emb.dtype).expand_as(action_emb)
            action_emb = torch.cat((action_emb, no_action))
            kv = [(torch.cat((k, k)), torch.cat((v, v))) for k, v in kv]
            mask = None if mask is None else torch.cat((mask, mask))
            positions = torch.cat((positions, positions))

        def predict(z: torch.Tensor, tau: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
            out = net(z[:, None], tau[:, None], d[:, None], action_emb, positions, mask, kv)[0]
            return out[:, 0]

        if w == 0:
            return predict

        def guided(z: torch.Tensor, tau: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
            cond, uncond = predict(*(torch.cat((x, x)) for x in (z, tau, d))).chunk(2)
            return cond + w * (cond - uncond)

        return guided
