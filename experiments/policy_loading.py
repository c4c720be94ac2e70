"""Turning a `--policy` argument into a policy: random, scripted expert, or a saved agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from data_collection.policies import POLICY_KINDS, Policy, check_action_space, make_policy


class SB3Policy(Policy):
    """A saved Stable-Baselines3 model (.zip): its most likely action, or with `sample` an
    action drawn from its distribution (seeded per episode, leaving torch's global stream as
    it was).

    A model trained on stacked frames (`frame_stack`, SB3's `VecFrameStack`: its observation
    holds k of the env's on the last axis) is fed the same stack: zeros before the episode's
    first frame, newest last.
    """

    def __init__(self, model: Any, sample: bool = False) -> None:
        self.model = model
        self.sample = sample
        self.frames = 1
        self.stack: np.ndarray | None = None

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        super().reset(env, seed)
        check_action_space(self.model.action_space, env)
        if env.observation_space.shape is None:
            raise ValueError(
                f"this agent observes {self.model.observation_space}, not {env.observation_space}"
                ": SB3 agents here observe arrays; score it in the env it was trained for"
            )
        frames, rest = divmod(
            int(np.prod(self.model.observation_space.shape)),
            int(np.prod(env.observation_space.shape)),
        )
        if rest or frames < 1:
            raise ValueError(
                f"this agent observes {self.model.observation_space}, not a stack of this env's "
                f"{env.observation_space}: score it in the env it was trained for"
            )
        self.frames = frames
        self.stack = None

    def act(self, obs: Any) -> Any:
        if self.frames > 1:
            obs = np.asarray(obs)
            if self.stack is None:
                self.stack = np.zeros(obs.shape[:-1] + (obs.shape[-1] * self.frames,), obs.dtype)
            self.stack = np.concatenate([self.stack[..., obs.shape[-1] :], obs], axis=-1)
            obs = self.stack
        if not self.sample:
            return self.model.predict(obs, deterministic=True)[0]
        device = self.model.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(int(self.rng.integers(2**63)))
            return self.model.predict(obs, deterministic=False)[0]


SB3_ALGOS = ("ppo", "a2c", "dqn")


def sb3_samples(algo: str, temperature: float) -> bool:
    """Whether an SB3 agent scored at `temperature` draws its actions: 0 takes its most likely
    action, 1 draws from its distribution (PPO, A2C; DQN's policy is greedy); else an error."""
    if temperature == 0:
        return False
    if algo.lower() == "dqn":
        raise ValueError(f"a DQN agent acts greedily: score it at temperature 0, not {temperature}")
    if temperature != 1:
        raise ValueError(
            f"an SB3 agent takes temperature 0 (its most likely action) or 1 (actions drawn "
            f"from its distribution), got {temperature}"
        )
    return True


def load_policy(spec: str, env_id: str, sample: bool = False) -> Policy:
    """`random`, `expert`, `noisy`, a saved SB3 agent as `ALGO:PATH` (e.g. `ppo:agent.zip`), or a
    saved diffusion policy as `diffusion:FOLDER`. `sample`: SB3 agents draw their actions
    instead of taking the most likely."""
    if spec in POLICY_KINDS:
        if spec != "random" and env_id.split(":")[-1].startswith("Dream"):
            raise ValueError(
                f"--policy {spec} needs the real env's true state, which {env_id} does not have; "
                "use random or a trained agent"
            )
        return make_policy(spec, env_id)
    algo, sep, path = spec.partition(":")
    if sep and algo.lower() == "diffusion":
        from agents.evaluation import load_agent

        return load_agent(spec, env_id)
    if not sep or algo.lower() not in SB3_ALGOS:
        raise ValueError(
            f"--policy must be one of {POLICY_KINDS}, diffusion:FOLDER or ALGO:PATH with ALGO in "
            f"{SB3_ALGOS}, got {spec!r}"
        )
    if not Path(path).is_file() and Path(f"{path}.zip").is_file():
        path = f"{path}.zip"  # SB3 saves agent.zip for `save("agent")`
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"saved agent {path} not found; train one with dreamgym train-policy"
        )
    import stable_baselines3

    try:
        model = getattr(stable_baselines3, algo.upper()).load(path, device="cpu")
    except Exception as err:  # SB3 raises many kinds for a file it cannot read
        raise ValueError(
            f"{path} is not a saved {algo.upper()} agent ({type(err).__name__}: {err}); "
            "check ALGO in --policy ALGO:PATH"
        ) from err
    return SB3Policy(model, sample)
