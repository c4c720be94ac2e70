"""Running one policy for one episode in any env and keeping its frames."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from data_collection.policies import Policy


@dataclass
class Episode:
    """What one rollout produced: rendered frames (T+1), actions and rewards (T)."""

    frames: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    final_info: dict = field(default_factory=dict)

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rewards))


def run_episode(
    env: gym.Env,
    policy: Policy,
    seed: int,
    max_steps: int | None = None,
    on_step: Callable[[], object] | None = None,
) -> Episode:
    """Reset `env` with `seed`, act with `policy` until the episode ends or `max_steps`;
    `on_step` is called after each step (e.g. a progress bar's update)."""
    obs, info = env.reset(seed=seed)
    policy.reset(env, seed)
    episode = Episode(frames=[env.render()], final_info=info)
    done = False
    while not done and (max_steps is None or len(episode.actions) < max_steps):
        action = policy.act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        episode.frames.append(env.render())
        episode.actions.append(np.asarray(action))
        episode.rewards.append(float(reward))
        episode.final_info = info
        done = terminated or truncated
        if on_step is not None:
            on_step()
    return episode
