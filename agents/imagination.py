"""Improving a diffusion policy in imagination (Dreamer 4's agent phase, on a dream env).

Each iteration rolls the policy out in a `DreamVectorEnv` (receding horizon: a chunk is sampled
with temperature, its first `execute` actions run, then the policy replans), learns a value
function on the imagined rewards by TD(lambda), and updates the policy by PMPO: the MDLM loss of
a chunk (a bound on -log pi) is lowered for chunks with positive advantage and raised for
negative ones (weights alpha and 1 - alpha, only the sign of the advantage is used), plus
beta times the reverse KL from the policy's token distributions to those of the frozen BC
policy at the same masked inputs. Only the actions a chunk actually executed are in its loss.
Checkpoints (policy, value function, optimizer, iteration, the sampling and masking RNGs) are
written every `ckpt_every` iterations; a resumed run starts fresh imagined episodes from there.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import nn
from tqdm import tqdm

from agents.diffusion_policy import DiffusionPolicy, load_diffusion_policy, save_policy
from agents.obs_encoders import check_obs_space, make_encoder
from world_models.action_encoder import spec_to_space
from world_models.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    set_torch_rng_state,
    torch_rng_state,
)
from world_models.runs import apply_overrides, prepare_run


@dataclass
class ImaginationConfig:
    num_envs: int = 16
    rollout_steps: int = 32  # imagined steps per env per iteration
    gamma: float = 0.99
    lam: float = 0.95
    alpha: float = 0.5  # PMPO weight of positive advantages (1 - alpha: negative)
    beta: float = 0.3  # weight of the reverse KL to the BC prior
    lr: float = 3e-5
    value_lr: float = 3e-4
    value_dim: int = 64
    temperature: float = 1.0
    horizon: int = 0  # imagined episode length in steps (0: the bundle's horizon)
    seed: int = 0  # the dreams' start contexts and noise, and the policy's draws


class ValueNet(nn.Module):
    """V(obs): observation tokens, mean-pooled, through an MLP -> (B,)."""

    def __init__(self, obs_spec: dict[str, Any], dim: int) -> None:
        super().__init__()
        self.encoder = make_encoder(obs_spec, dim)
        self.head = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, 1)
        )

    def forward(self, obs: Any) -> torch.Tensor:
        return self.head(self.encoder(obs).mean(1)).squeeze(-1)


def lambda_returns(
    rewards: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    done: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """TD(lambda) targets (T, N). `next_values[t]` is V of the observation after step t (the
    final one when the episode ended there); the return is cut where an episode ended (done)
    and not bootstrapped where it terminated."""
    steps = len(rewards)
    out = np.zeros_like(rewards)
    following = next_values[-1]
    for t in range(steps - 1, -1, -1):
        ahead = np.where(done[t] | (t == steps - 1), next_values[t], following)
        mixed = (1 - lam) * next_values[t] + lam * ahead
        out[t] = rewards[t] + gamma * (1 - terminated[t]) * mixed
        following = out[t]
    return out


def reverse_kl(logp: torch.Tensor, prior_logp: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Mean over `where` positions of KL(p || prior) of token distributions (B, L, V + 1)."""
    p = logp.exp()
    zero = p == 0  # -inf log-probabilities: masked out before subtracting (no NaN gradients)
    terms = (p * (logp.masked_fill(zero, 0.0) - prior_logp.masked_fill(zero, 0.0))).sum(-1)
    return (terms * where).sum() / where.sum().clamp(min=1)


class Imagination:
    """PMPO improvement of `policy` in the batched dream env `venv` (SAME_STEP autoreset)."""

    def __init__(self, policy: DiffusionPolicy, venv: Any, cfg: ImaginationConfig, device="cpu"):
        mode = venv.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"Imagination needs a vector env with same-step autoreset, got {mode}: make it "
                "with autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP"
            )
        self.cfg = cfg
        self.device = torch.device(device)
        torch.manual_seed(cfg.seed)  # the value net's initial weights, the loss's masks
        self.policy = policy.to(self.device).train()
        self.prior = copy.deepcopy(policy).eval().requires_grad_(False)
        self.value = ValueNet(policy.config.obs_spec, cfg.value_dim).to(self.device)
        self.learner = nn.ModuleDict({"policy": self.policy, "value": self.value})
        # one optimizer (one checkpoint): the value loss reaches only the value net's
        # parameters and the policy loss only the policy's (advantages are detached)
        self.opt = torch.optim.AdamW(
            [
                {"params": self.policy.parameters(), "lr": cfg.lr, "weight_decay": 0.0},
                {"params": self.value.parameters(), "lr": cfg.value_lr},
            ]
        )
        self.venv = venv
        self.iteration = 0
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.obs, _ = venv.reset(seed=cfg.seed)
        n, execute = venv.num_envs, policy.config.execute
        self.plan = np.zeros(
            (n, execute, *venv.single_action_space.shape), venv.single_action_space.dtype
        )
        self.used = np.full(n, execute)  # actions of the current chunk already executed
        self.episode_return = np.zeros(n)

    def _tensor(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(obs, device=self.device)

    def rollout(self) -> dict[str, Any]:
        """Imagine `rollout_steps` steps in every env; -> arrays for `update`."""
        cfg, execute, dims = self.cfg, self.policy.config.execute, self.policy.tokenizer.dims
        obs_list, rewards, terminated, done, next_obs = [], [], [], [], []
        decisions: list[dict[str, Any]] = []
        current: dict[int, dict[str, Any]] = {}
        finished: list[float] = []
        # every rollout starts new chunks: each executed action is then part of a decision
        # made (and scored) in this rollout
        self.used[:] = execute
        self.policy.eval()
        for t in range(cfg.rollout_steps):
            replan = np.flatnonzero(self.used >= execute)
            if len(replan):
                tokens = self.policy.sample(
                    self._tensor(self.obs[replan]), cfg.temperature, generator=self.generator
                )
                self.plan[replan] = self.policy.chunk_actions(tokens)[:, :execute]
                self.used[replan] = 0
                for j, i in enumerate(replan):
                    current[i] = {
                        "t": t,
                        "env": i,
                        "obs": self.obs[i].copy(),
                        "tokens": tokens[j].cpu(),
                        "executed": 0,
                    }
                    decisions.append(current[i])
            actions = self.plan[np.arange(len(self.used)), self.used]
            obs, reward, term, trunc, info = self.venv.step(actions)
            self.used += 1
            ended = term | trunc
            after = obs.copy()
            for i in np.flatnonzero(ended):
                after[i] = info["final_obs"][i]
            for i in range(len(self.used)):
                current[i]["executed"] += 1
            self.episode_return += reward
            for i in np.flatnonzero(ended):
                finished.append(float(self.episode_return[i]))
                self.episode_return[i] = 0.0
                self.used[i] = execute
            obs_list.append(self.obs)
            rewards.append(reward)
            terminated.append(term)
            done.append(ended)
            next_obs.append(after)
            self.obs = obs
        self.policy.train()
        return {
            "obs": np.stack(obs_list),
            "next_obs": np.stack(next_obs),
            "reward": np.stack(rewards).astype(np.float32),
            "terminated": np.stack(terminated),
            "done": np.stack(done),
            "decisions": decisions,
            "finished": finished,
            "valid_tokens": dims,
        }

    def _values(self, obs: np.ndarray) -> torch.Tensor:
        steps, n = obs.shape[:2]
        return self.value(self._tensor(obs.reshape(steps * n, *obs.shape[2:]))).reshape(steps, n)

    def update(self, data: dict[str, Any]) -> dict[str, float]:
        """One value step (TD(lambda) targets) and one PMPO policy step on a rollout."""
        cfg = self.cfg
        with torch.no_grad():
            next_v = self._values(data["next_obs"]).cpu().numpy()
        targets = lambda_returns(
            data["reward"],
            next_v,
            data["terminated"].astype(np.float32),
            data["done"],
            cfg.gamma,
            cfg.lam,
        )
        values = self._values(data["obs"])
        value_loss = (values - torch.as_tensor(targets, device=self.device)).pow(2).mean()

        dec = data["decisions"]
        adv = np.array([targets[d["t"], d["env"]] - values[d["t"], d["env"]].item() for d in dec])
        x0 = torch.stack([d["tokens"] for d in dec]).to(self.device)  # (B, L)
        executed = torch.as_tensor([d["executed"] * data["valid_tokens"] for d in dec])
        valid = torch.arange(x0.shape[1])[None] < executed[:, None]
        obs = self._tensor(np.stack([d["obs"] for d in dec]))
        out = self.policy.token_nll(obs, x0, valid.to(self.device))
        prior_logp = self.prior.log_probs(self.prior.encode(obs), out["x_t"], out["t"])
        kl = reverse_kl(out["logp"], prior_logp, out["target"])
        pos = torch.as_tensor(adv > 0, device=self.device)
        neg = torch.as_tensor(adv < 0, device=self.device)
        nll = out["nll"] / valid.sum(-1).clamp(min=1).to(self.device)
        pmpo = cfg.alpha * _masked_mean(nll, pos) - (1 - cfg.alpha) * _masked_mean(nll, neg)
        loss = pmpo + cfg.beta * kl + value_loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), 1.0)
        self.opt.step()
        self.iteration += 1
        finished = data["finished"]
        return {
            "value_loss": value_loss.item(),
            "kl": kl.item(),
            "pmpo": pmpo.item(),
            "positive_fraction": float(np.mean(adv > 0)),
            "imagined_reward_per_step": float(data["reward"].mean()),
            **({"imagined_return": float(np.mean(finished))} if finished else {}),
        }

    def save(self, run_dir: str | os.PathLike) -> Path:
        state = {
            "config": asdict(self.cfg),
            "generator": self.generator.get_state().tolist(),
            **torch_rng_state(self.device),  # the BC loss's masks
        }
        return save_checkpoint(run_dir, self.iteration, self.learner, self.opt, state)

    def resume(self, run_dir: str | os.PathLike) -> bool:
        """Continue from the run's latest checkpoint (False when there is none); the dream
        envs restart from start contexts seeded by the seed and the iteration."""
        folder = latest_checkpoint(run_dir)
        if folder is None:
            return False
        state = load_checkpoint(folder, self.learner, self.opt)
        for group, lr in zip(self.opt.param_groups, (self.cfg.lr, self.cfg.value_lr), strict=True):
            group["lr"] = lr  # this run's settings, not the checkpoint's
        self.iteration = int(state["step"])
        self.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
        set_torch_rng_state(state, self.device)
        self.obs, _ = self.venv.reset(seed=self.cfg.seed * 1_000_000 + self.iteration)
        self.episode_return[:] = 0.0
        return True


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def improve_in_dream(
    init: str | os.PathLike,
    env_id: str,
    run_dir: str | os.PathLike,
    steps: int = 100,
    bundle: str | os.PathLike | None = None,
    num_envs: int | None = None,
    eval_env: str | None = None,
    eval_every: int = 0,
    eval_episodes: int = 10,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
    ckpt_every: int = 25,
    resume: bool = False,
    seed: int = 0,
) -> Path:
    """Run `steps` imagination iterations from the BC policy in `init` (with `resume`, from the
    run's latest checkpoint on, with the settings recorded in its run.json; a larger `steps`
    extends it); the improved policy is saved to `run_dir/policy/`.
    TensorBoard chart "return": imagined and real returns."""
    import gymnasium as gym
    from torch.utils.tensorboard import SummaryWriter

    import envs  # noqa: F401  (registers dreamgym ids)
    from agents.baselines import is_dream
    from agents.diffusion_policy import DiffusionAgent
    from agents.evaluation import evaluate_policy
    from agents.return_chart import ReturnChart
    from envs.dream_vector import DreamVectorEnv

    if not is_dream(env_id):
        raise ValueError(f"imagination training needs a dream env id (Dream-...), got {env_id}")
    if eval_env and is_dream(eval_env):
        raise ValueError(f"--eval-env must be a real env, got {eval_env}")
    if ckpt_every < 1:
        raise ValueError(f"ckpt_every must be >= 1, got {ckpt_every}")
    cfg = apply_overrides(ImaginationConfig(seed=seed), overrides or {})
    if num_envs:
        cfg.num_envs = num_envs
    bundle = bundle or gym.spec(env_id).kwargs.get("bundle")
    run_dir = Path(run_dir)
    record = {
        "init": str(init),
        "env": env_id,
        "steps": steps,
        "bundle": None if bundle is None else str(bundle),
        "config": asdict(cfg),
    }
    record = prepare_run(run_dir, record, resume, must_match=("init", "env"), steps_key=("steps",))
    steps, bundle, cfg = record["steps"], record["bundle"], ImaginationConfig(**record["config"])
    policy = load_diffusion_policy(init, device)
    venv = DreamVectorEnv(
        cfg.num_envs,
        bundle=bundle,
        device=device,
        autoreset_mode=AutoresetMode.SAME_STEP,
        horizon=cfg.horizon or None,
    )
    check_obs_space(policy.config.obs_spec, venv.single_observation_space, env_id)
    acts_in = spec_to_space(policy.config.action_spec)
    if acts_in != venv.single_action_space:
        venv.close()
        raise ValueError(
            f"the policy in {init} acts in {acts_in} but {env_id} acts in "
            f"{venv.single_action_space}: improve it in a dream of the env it was trained for"
        )
    loop = Imagination(policy, venv, cfg, device)
    if resume and not loop.resume(run_dir):
        venv.close()
        raise FileNotFoundError(f"--resume: no checkpoint in {run_dir}")
    # on resume, hide what a killed run logged after its last checkpoint
    purge = loop.iteration + 1 if loop.iteration else None
    writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)
    chart = ReturnChart(run_dir / "tensorboard", purge_step=purge)
    try:
        for it in tqdm(
            range(loop.iteration + 1, steps + 1),
            desc="imagination",
            initial=loop.iteration,
            total=steps,
        ):
            metrics = loop.update(loop.rollout())
            for key, value in metrics.items():
                writer.add_scalar(f"imagination/{key}", value, it)
            scalars = {"dream": metrics["imagined_return"]} if "imagined_return" in metrics else {}
            if eval_env and eval_every > 0 and it % eval_every == 0:
                policy_now = copy.deepcopy(loop.policy).eval()  # sampled as in the dream
                agent = DiffusionAgent(policy_now, temperature=cfg.temperature, device=device)
                scalars["real"] = evaluate_policy(agent, eval_env, eval_episodes, progress=False)[
                    "mean_return"
                ]
            if scalars:
                chart.add(scalars, it)
            if it % ckpt_every == 0 or it == steps:
                loop.save(run_dir)
    finally:
        writer.close()
        chart.close()
        venv.close()
    return save_policy(loop.policy.cpu().eval(), run_dir / "policy")
