"""Policies that drive real envs while recording: random, scripted experts, epsilon-noisy experts.

A policy is bound to one env at `reset` (scripted experts read the env's true state through
`env.unwrapped`) and then maps each observation to an action with `act`.

Seeds: an episode's seed goes to `env.reset(seed=...)` and to `policy.reset(env, seed)`.
Gymnasium's `np_random(seed)`, `Space.seed(seed)` and `np.random.default_rng(seed)` are one and
the same generator, so a policy draws from streams derived from the seed (`derived_seed`),
never from the seed itself: its random actions would otherwise repeat the env's own draws.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym
import numpy as np

# Real env id (without any "module:" prefix) -> "module:Class" of its scripted expert.
EXPERTS: dict[str, str] = {
    "MiniGridPixels-Empty-8x8-v0": "data_collection.experts.minigrid:MiniGridPlanner",
    "MiniGridPixels-DoorKey-8x8-v0": "data_collection.experts.minigrid:MiniGridPlanner",
    "MiniGridSymbolic-Empty-8x8-v0": "data_collection.experts.minigrid:MiniGridPlanner",
    "MiniGridSymbolic-DoorKey-8x8-v0": "data_collection.experts.minigrid:MiniGridPlanner",
    "MovingMNIST-v0": "data_collection.experts.moving_mnist:Chaser",
    "LaneSim-v0": "data_collection.experts.lane:LaneExpert",
}

POLICY_KINDS = ("expert", "random", "noisy")


POLICY_STREAM, SPACE_STREAM, EXPERT_STREAM = 1, 2, 3  # the env itself draws from the seed


def derived_seed(seed: int | None, stream: int) -> int | None:
    """A seed for random stream `stream`, independent of the generator `seed` itself makes."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


class Policy:
    """Base class: `reset(env, seed)` at the start of each episode, then `act(obs)` per step."""

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        self.env = env
        self.rng = np.random.default_rng(derived_seed(seed, POLICY_STREAM))

    def act(self, obs: Any) -> Any:
        raise NotImplementedError


def check_action_space(trained_for: gym.Space, env: gym.Env) -> None:
    """Raise a clear error unless an agent trained to act in `trained_for` can act in `env`."""
    if trained_for != env.action_space:
        name = env.spec.id if env.spec else type(env.unwrapped).__name__
        raise ValueError(
            f"this agent acts in {trained_for} but {name} acts in {env.action_space}: score it "
            "in the env it was trained for"
        )


class RandomPolicy(Policy):
    """Uniform samples from the action space, seeded per episode."""

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        super().reset(env, seed)
        env.action_space.seed(derived_seed(seed, SPACE_STREAM))

    def act(self, obs: Any) -> Any:
        return self.env.action_space.sample()


class NoisyPolicy(Policy):
    """An expert that takes a uniformly random action with probability `epsilon` (for coverage).

    The expert is still queried every step, so experts that track state stay consistent.
    """

    def __init__(self, expert: Policy, epsilon: float = 0.2) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.expert = expert
        self.epsilon = epsilon

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        super().reset(env, seed)
        env.action_space.seed(derived_seed(seed, SPACE_STREAM))
        self.expert.reset(env, derived_seed(seed, EXPERT_STREAM))

    def act(self, obs: Any) -> Any:
        action = self.expert.act(obs)
        if self.rng.random() < self.epsilon:
            return self.env.action_space.sample()
        return action


def make_expert(env_id: str) -> Policy:
    """The scripted expert for a real env id; a clear error if there is none."""
    key = env_id.split(":")[-1]
    if key not in EXPERTS:
        known = ", ".join(sorted(EXPERTS))
        raise ValueError(f"no scripted expert for {env_id!r}; experts exist for: {known}")
    module_name, class_name = EXPERTS[key].split(":")
    return getattr(importlib.import_module(module_name), class_name)()


def make_policy(kind: str, env_id: str, epsilon: float = 0.2) -> Policy:
    """A policy by kind: 'expert', 'random' or 'noisy' (expert with epsilon-random actions)."""
    if kind == "random":
        return RandomPolicy()
    if kind == "expert":
        return make_expert(env_id)
    if kind == "noisy":
        return NoisyPolicy(make_expert(env_id), epsilon)
    raise ValueError(f"unknown policy kind {kind!r}; choose one of {', '.join(POLICY_KINDS)}")
