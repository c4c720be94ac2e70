"""Masked discrete diffusion policy (MDLM, Sahoo et al. 2024) over chunks of future actions.

An action chunk is H future actions, each as D discrete tokens (`ActionTokenizer`): a Discrete
space is one token, a MultiDiscrete space one token per dimension, a Box one token per
dimension after binning into `bins` values. The L = H * D tokens share a vocabulary of
V = max(values per dimension) plus a [MASK] token (id V).

Denoiser: DiT blocks with adaLN on the noise level t plus an MLP read of all observation tokens
(as DiT adds its class embedding); that observation summary is also added to every action token,
and the action tokens attend jointly to the observation tokens (from `agents.obs_encoders`) and
to each other. Shift and scale start at zero but the gates at one and the output head is not
zeroed: with adaLN-Zero the observation reached the logits only through gates grown from zero,
and BC sat for hundreds of steps on the most common action. SUBS parameterisation:
the [MASK] logit is -inf, values a dimension cannot take are -inf, and unmasked tokens are
copied through (their distribution is a point mass on themselves).

Noise: log-linear schedule, alpha(t) = 1 - t: every token is masked with probability t (and at
least one is). ELBO term (`token_nll`): cross-entropy on masked tokens weighted by 1/t
(= -alpha'(t) / (1 - alpha(t))); the BC loss divides each chunk's sum by its realised number
of masked tokens instead (`loss_weight="chunk"`), which has the same aim and far less variance
on short chunks. Sampling:
S steps from t = 1 to 0; at each step the most confident masked tokens are revealed so that
ceil(L * (1 - s)) tokens are unmasked after the step to s; revealed tokens never change.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from agents.obs_encoders import check_obs_space, make_encoder, obs_to_tensor
from data_collection.policies import Policy, check_action_space
from world_models.action_encoder import spec_to_space
from world_models.checkpoint import load_weights, read_json, save_tensors, write_json

POLICY_KIND = "diffusion-policy"


class ActionTokenizer:
    """Actions of a Discrete, MultiDiscrete or Box space <-> (..., D) int64 tokens."""

    def __init__(self, space: gym.Space, bins: int = 21) -> None:
        self.space = space
        if isinstance(space, spaces.Discrete):
            self.sizes = [int(space.n)]
            self.offset = np.array([int(space.start)])
        elif isinstance(space, spaces.MultiDiscrete):
            self.sizes = [int(n) for n in space.nvec.ravel()]
            self.offset = np.asarray(space.start).ravel().astype(np.int64)
        elif isinstance(space, spaces.Box):
            if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
                raise ValueError(f"Box actions need finite bounds to be binned, got {space}")
            if bins < 2:
                raise ValueError(f"bins must be at least 2, got {bins}")
            self.sizes = [bins] * int(np.prod(space.shape))
            self.low = space.low.ravel().astype(np.float64)
            self.high = space.high.ravel().astype(np.float64)
        else:
            raise ValueError(f"unsupported action space {space}: use Discrete, MultiDiscrete, Box")
        self.dims = len(self.sizes)
        self.vocab = max(self.sizes)

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """(..., *action_shape) -> (..., D) tokens in [0, size of each dimension)."""
        a = np.asarray(actions)
        lead = a.shape[: a.ndim - len(self.space.shape)]
        a = a.reshape(*lead, self.dims)
        if isinstance(self.space, spaces.Box):
            a = np.clip(a.astype(np.float64), self.low, self.high)
            frac = (a - self.low) / np.where(self.high > self.low, self.high - self.low, 1.0)
            return np.rint(frac * (np.asarray(self.sizes) - 1)).astype(np.int64)
        return (a - self.offset).astype(np.int64)

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """(..., D) tokens -> (..., *action_shape) actions of the space (bin centres for Box)."""
        tok = np.clip(np.asarray(tokens, dtype=np.int64), 0, np.asarray(self.sizes) - 1)
        lead = tok.shape[:-1]
        if isinstance(self.space, spaces.Box):
            frac = tok / (np.asarray(self.sizes) - 1)
            out = self.low + frac * (self.high - self.low)
            return out.reshape(*lead, *self.space.shape).astype(self.space.dtype)
        out = tok + self.offset
        if isinstance(self.space, spaces.Discrete):
            return out[..., 0]
        return out.reshape(*lead, *self.space.shape).astype(self.space.dtype)


LOSS_WEIGHTS = ("chunk", "token")


@dataclass
class DiffusionPolicyConfig:
    """Everything needed to rebuild a policy (saved as JSON beside its weights).

    loss_weight: how the BC loss weighs masked tokens. "chunk" (MDLM): every chunk counts the
    same and its masked tokens share its weight (1/t with the realised mask count in place of
    its expectation t * L). "token": every masked token in the batch counts the same, so
    chunks at high noise count more (the policies trained before 2026-12-02 used it).
    """

    obs_spec: dict[str, Any] = field(default_factory=dict)
    action_spec: dict[str, Any] = field(default_factory=dict)
    horizon: int = 8  # H actions per chunk
    bins: int = 21  # values per Box dimension
    dim: int = 128
    depth: int = 3
    num_heads: int = 4
    mlp_ratio: int = 4
    steps: int = 8  # S unmasking steps
    execute: int = 4  # actions executed from each chunk before replanning
    t_min: float = 1e-3  # smallest noise level drawn in training
    loss_weight: str = "chunk"

    # what configs saved before a setting existed meant (missing keys load as these)
    SAVED_DEFAULTS: ClassVar[dict[str, Any]] = {"loss_weight": "token"}

    def __post_init__(self) -> None:
        positive = ("horizon", "dim", "depth", "num_heads", "mlp_ratio", "steps", "execute")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.bins < 2:
            raise ValueError(f"bins must be at least 2, got {self.bins}")
        if self.execute > self.horizon:
            raise ValueError(
                f"execute ({self.execute}) cannot exceed the chunk's horizon ({self.horizon})"
            )
        if not 0.0 < self.t_min < 1.0:
            raise ValueError(f"t_min must be in (0, 1), got {self.t_min}")
        if self.loss_weight not in LOSS_WEIGHTS:
            raise ValueError(f"loss_weight must be one of {LOSS_WEIGHTS}, got {self.loss_weight!r}")

    @classmethod
    def from_saved(cls, data: dict[str, Any]) -> DiffusionPolicyConfig:
        """A config from its saved JSON, settings it predates at what they meant then."""
        return cls(**{**cls.SAVED_DEFAULTS, **data})


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of noise levels t (B,) in [0, 1] -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class DiTBlock(nn.Module):
    """adaLN block: joint attention of action tokens over [obs tokens; action tokens]."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm_ctx = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim),
            nn.GELU(approximate="tanh"),
            nn.Linear(mlp_ratio * dim, dim),
        )
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)
        with torch.no_grad():  # gates start at 1: the blocks compute from step 0
            self.ada[1].bias.view(6, dim)[[2, 5]] = 1.0

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x (B, L, dim) action tokens, ctx (B, N, dim) obs tokens, c (B, dim) noise level."""
        b, n, d = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c)[:, None].chunk(6, dim=-1)
        h = modulate(self.norm1(x), shift1, scale1)
        keys = torch.cat([self.norm_ctx(ctx), h], dim=1)  # (B, N + L, dim)
        heads = lambda y: y.reshape(b, y.shape[1], self.num_heads, -1).transpose(1, 2)
        k, v = self.kv(keys).chunk(2, dim=-1)
        attn = F.scaled_dot_product_attention(heads(self.q(h)), heads(k), heads(v))
        x = x + gate1 * self.proj(attn.transpose(1, 2).reshape(b, n, d))
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class DiffusionPolicy(nn.Module):
    """Denoiser p(x_0 | x_t, obs) over L = horizon * D action tokens, with an MDLM sampler."""

    def __init__(self, config: DiffusionPolicyConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = ActionTokenizer(spec_to_space(config.action_spec), config.bins)
        self.length = config.horizon * self.tokenizer.dims  # L
        self.mask_id = self.tokenizer.vocab  # V
        dim = config.dim
        self.encoder = make_encoder(config.obs_spec, dim)
        self.token_emb = nn.Embedding(self.mask_id + 1, dim)
        nn.init.normal_(self.token_emb.weight, std=0.02)
        self.pos = nn.Parameter(torch.randn(1, self.length, dim) * 0.02)
        self.t_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        # a direct path from the whole observation into adaLN (all obs tokens, flattened)
        self.obs_cond = nn.Sequential(
            nn.LayerNorm(self.encoder.pos.shape[1] * dim),
            nn.Linear(self.encoder.pos.shape[1] * dim, 4 * dim),
            nn.GELU(),
            nn.Linear(4 * dim, dim),
        )
        self.blocks = nn.ModuleList(
            DiTBlock(dim, config.num_heads, config.mlp_ratio) for _ in range(config.depth)
        )
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.head = nn.Linear(dim, self.mask_id)
        nn.init.zeros_(self.ada_out[1].weight)
        nn.init.zeros_(self.ada_out[1].bias)
        # (L, V + 1): True where position l's dimension cannot take the value (and for [MASK])
        sizes = torch.tensor(self.tokenizer.sizes).repeat(config.horizon)
        invalid = torch.arange(self.mask_id + 1)[None] >= sizes[:, None]
        self.register_buffer("invalid", invalid, persistent=False)

    def encode(self, obs: Any) -> torch.Tensor:
        """Observation batch -> obs tokens (B, N, dim)."""
        return self.encoder(obs)

    def log_probs(self, ctx: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """SUBS log p(x_0 | x_t): (B, L, V + 1), -inf at [MASK] and at impossible values;
        unmasked positions are a point mass on their own token."""
        obs = self.obs_cond(ctx.flatten(1))  # (B, dim)
        c = self.t_mlp(timestep_embedding(t, self.config.dim)) + obs
        h = self.token_emb(x_t) + self.pos + obs[:, None]
        for block in self.blocks:
            h = block(h, ctx, c)
        shift, scale = self.ada_out(c)[:, None].chunk(2, dim=-1)
        logits = self.head(modulate(self.norm_out(h), shift, scale)).float()  # (B, L, V)
        logits = F.pad(logits, (0, 1))
        logits = logits.masked_fill(self.invalid, float("-inf"))
        logp = logits.log_softmax(dim=-1)
        unmasked = x_t != self.mask_id
        copied = torch.full_like(logp, float("-inf")).scatter(-1, x_t[..., None], 0.0)
        return torch.where(unmasked[..., None], copied, logp)

    def corrupt(
        self, x0: torch.Tensor, valid: torch.Tensor, t: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mask each token with probability t (stratified over the batch when t is None), and
        at least one valid token per row; padded positions (valid False) are always masked.
        -> (x_t, masked (B, L) bool, t (B,))."""
        b = x0.shape[0]
        if t is None:
            u = (torch.rand((), device=x0.device) + torch.arange(b, device=x0.device) / b) % 1.0
            t = self.config.t_min + (1 - self.config.t_min) * u
        u = torch.rand(x0.shape, device=x0.device).masked_fill(~valid, 2.0)
        first = u.argmin(-1, keepdim=True)  # one valid token is always masked
        masked = (u < t[:, None]) | ~valid
        masked = masked.scatter(-1, first, True)
        return torch.where(masked, self.mask_id, x0), masked, t

    def token_nll(
        self, obs: Any, x0: torch.Tensor, valid: torch.Tensor, t: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-sample MDLM loss terms: `nll` (B,) = sum over masked valid tokens of
        -log p(x0) / t; also `logp`, `x_t`, `target` (B, L) bool, `t`, `ctx`."""
        ctx = self.encode(obs)
        x_t, masked, t = self.corrupt(x0, valid, t)
        logp = self.log_probs(ctx, x_t, t)
        target = masked & valid
        token = -logp.gather(-1, x0[..., None]).squeeze(-1)
        token = torch.where(target, token, torch.zeros_like(token))
        nll = token.sum(-1) / t
        return {"nll": nll, "logp": logp, "x_t": x_t, "target": target, "t": t, "ctx": ctx}

    def loss(
        self, obs: Any, x0: torch.Tensor, valid: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss: cross-entropy on masked valid tokens, weighted as
        `config.loss_weight` says, and the accuracy of argmax predictions on those tokens."""
        out = self.token_nll(obs, x0, valid)
        token = out["nll"] * out["t"]  # (B,) summed cross-entropy over masked tokens
        count = out["target"].sum(-1)  # (B,) masked valid tokens
        if self.config.loss_weight == "chunk":
            loss = (token / count.clamp(min=1)).mean()
        else:
            loss = token.sum() / count.sum().clamp(min=1)
        with torch.no_grad():
            hit = (out["logp"].argmax(-1) == x0) & out["target"]
            acc = hit.sum() / count.sum().clamp(min=1)
        return loss, {"token_accuracy": acc.item()}

    @torch.no_grad()
    def sample(
        self,
        obs: Any,
        temperature: float = 0.0,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        trace: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Tokens (B, L) by confidence-ordered unmasking in `steps` (default config.steps).

        temperature 0: argmax tokens, confidence = their probability; > 0: tokens drawn from
        the tempered distribution, confidence = the drawn token's probability. `trace`, when
        given, receives x after every step."""
        steps = steps or self.config.steps
        ctx = self.encode(obs)
        b, length = ctx.shape[0], self.length
        x = torch.full((b, length), self.mask_id, dtype=torch.long, device=ctx.device)
        for k in range(steps, 0, -1):
            t = k / steps
            logp = self.log_probs(ctx, x, torch.full((b,), t, device=ctx.device))
            if temperature > 0:
                probs = (logp / temperature).softmax(-1).reshape(b * length, -1)
                cand = torch.multinomial(probs, 1, generator=generator).reshape(b, length)
            else:
                cand = logp.argmax(-1)
            conf = logp.gather(-1, cand[..., None]).squeeze(-1)
            masked = x == self.mask_id
            conf = conf.masked_fill(~masked, float("-inf"))
            target = -(-length * (steps - k + 1) // steps)  # ceil(L (1 - s)), s = (k - 1) / S
            reveal = target - (length - masked.sum(-1))  # (B,) tokens to reveal now
            rank = conf.argsort(-1, descending=True).argsort(-1)  # 0 = most confident
            chosen = masked & (rank < reveal[:, None])
            x = torch.where(chosen, cand, x)
            if trace is not None:
                trace.append(x.clone())
        return x

    def chunk_actions(self, tokens: torch.Tensor) -> np.ndarray:
        """(B, L) tokens -> (B, H, *action_shape) actions."""
        tok = tokens.cpu().numpy().reshape(tokens.shape[0], self.config.horizon, -1)
        return self.tokenizer.decode(tok)


def save_policy(policy: DiffusionPolicy, folder: str | os.PathLike) -> Path:
    """Write `config.json` (kind + config) and `model.safetensors` to `folder`."""
    folder = Path(folder)
    save_tensors(folder / "model.safetensors", policy.state_dict())
    write_json(
        folder / "config.json",
        {"kind": POLICY_KIND, "config": dataclasses.asdict(policy.config)},
    )
    return folder


def load_diffusion_policy(
    folder: str | os.PathLike, device: str | torch.device = "cpu"
) -> DiffusionPolicy:
    """Rebuild a policy saved by `save_policy` (weights checked against the config)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"diffusion policy folder {folder} not found; train one with "
            "dreamgym train-policy --algo diffusion"
        )
    meta = read_json(folder / "config.json")
    if not isinstance(meta, dict) or meta.get("kind") != POLICY_KIND:
        kind = meta.get("kind") if isinstance(meta, dict) else None
        what = f"a {kind!r}" if kind else "no saved policy (its config.json names no kind)"
        raise ValueError(
            f"{folder} holds {what}, not a {POLICY_KIND}; train one with "
            "dreamgym train-policy --algo diffusion"
        )
    try:
        policy = DiffusionPolicy(DiffusionPolicyConfig.from_saved(meta["config"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{folder / 'config.json'} is not a valid {POLICY_KIND} config ({err}); train the "
            "policy again with dreamgym train-policy --algo diffusion"
        ) from err
    load_weights(policy, folder / "model.safetensors")
    return policy.to(device).eval()


class DiffusionAgent(Policy):
    """A policy around a `DiffusionPolicy` with a receding horizon:
    sample a chunk, execute its first `execute` actions, then replan from the new observation.
    """

    def __init__(
        self,
        policy: DiffusionPolicy,
        execute: int | None = None,
        temperature: float = 0.0,
        device: str | torch.device = "cpu",
    ) -> None:
        self.policy = policy.to(device).eval()
        self.execute = execute or policy.config.execute
        if not 1 <= self.execute <= policy.config.horizon:
            raise ValueError(f"execute must be in [1, {policy.config.horizon}], got {self.execute}")
        self.temperature = temperature
        self.device = torch.device(device)
        self.queue: list[Any] = []
        self.generator = torch.Generator(device=self.device)

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        if env is not None:
            name = env.spec.id if env.spec else type(env.unwrapped).__name__
            check_obs_space(self.policy.config.obs_spec, env.observation_space, name)
            check_action_space(spec_to_space(self.policy.config.action_spec), env)
        self.env = env
        self.queue = []
        self.generator.manual_seed(0 if seed is None else seed)

    def act(self, obs: Any) -> Any:
        if not self.queue:
            batch = obs_to_tensor(
                {k: np.asarray(v)[None] for k, v in obs.items()}
                if isinstance(obs, dict)
                else np.asarray(obs)[None],
                self.device,
            )
            tokens = self.policy.sample(batch, self.temperature, generator=self.generator)
            self.queue = list(self.policy.chunk_actions(tokens)[0][: self.execute])
        return self.queue.pop(0)
