"""Scripted expert for MovingMNIST-v0: chase the other digit by intercepting it."""

from __future__ import annotations

from typing import Any

import numpy as np

from data_collection.policies import Policy
from envs.moving_mnist import bounce


class Chaser(Policy):
    """Steers the ego digit to where the other digit will be (leads the target).

    Reads both digit positions and the other digit's velocity from `env.unwrapped`, rolls the
    other digit forward with the env's own bounce motion, and picks the first step k at which
    the ego digit can be there (each axis moves at most `max_speed` px per frame). The action
    covers 1/k of the way, so the ego arrives at step k; once caught (k = 1) it stays on top.
    If no step within `horizon` is reachable (a faster target), it heads for the next position.
    """

    def __init__(self, horizon: int = 64) -> None:
        self.horizon = horizon

    def act(self, obs: Any) -> np.ndarray:
        env = self.env.unwrapped
        ego, reach = env.ego_position, env.max_speed
        position, velocity = env.other_position, env.other_velocity
        aim, steps = bounce(position, velocity)[0], 1
        for k in range(1, self.horizon + 1):
            position, velocity = bounce(position, velocity)
            if np.max(np.abs(position - ego)) <= reach * k:
                aim, steps = position, k
                break
        return np.clip((aim - ego) / (reach * steps), -1.0, 1.0).astype(np.float32)
