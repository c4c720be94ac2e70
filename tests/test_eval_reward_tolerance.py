"""How eval-world-model decides that a predicted reward is right."""

from __future__ import annotations

import numpy as np

from world_models.evaluate import reward_tolerance


def test_discrete_rewards_use_half_the_smallest_gap():
    rewards = np.array([0.0, 0.0, 0.01, 0.03, 1.0])
    assert reward_tolerance(rewards) == 0.005


def test_dense_rewards_use_a_share_of_the_range():
    rewards = np.random.default_rng(0).uniform(0.0, 1.0, 1000)
    tol = reward_tolerance(rewards)
    span = rewards.max() - rewards.min()
    assert np.isclose(tol, 0.05 * span, atol=1e-6)


def test_constant_reward():
    assert reward_tolerance(np.zeros(10)) == 0.05
