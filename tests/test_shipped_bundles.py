"""The trained bundles shipped in envs/bundles: every named dream id works out of the box."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs
from world_models.bundle import load_bundle

SHIPPED = sorted(envs._DREAMS)


@pytest.mark.parametrize("dream_id", SHIPPED)
def test_shipped_bundle_matches_its_real_env(dream_id: str) -> None:
    folder = envs.BUNDLES_DIR / envs._DREAMS[dream_id]
    size = sum(f.stat().st_size for f in folder.iterdir() if f.suffix == ".safetensors")
    assert size <= 25 * 2**20, f"{folder} weighs {size / 2**20:.1f} MB, the limit is 25 MB"
    bundle = load_bundle(folder)
    real = gym.make(bundle.config["env_id"])
    dream = gym.make(dream_id)
    assert dream.observation_space == real.observation_space
    assert dream.action_space == real.action_space
    assert (folder / "README.md").is_file() and (folder / "eval" / "metrics.json").is_file()


@pytest.mark.parametrize("dream_id", SHIPPED)
def test_shipped_dream_ids_pass_check_env(dream_id: str) -> None:
    env = gym.make(dream_id)
    gym_check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped)


@pytest.mark.parametrize("dream_id", SHIPPED)
def test_shipped_dream_is_seeded(dream_id: str) -> None:
    runs = []
    for _ in range(2):
        env = gym.make(dream_id)
        env.action_space.seed(3)
        obs, _ = env.reset(seed=7)
        frames = [obs]
        for _ in range(3):
            frames.append(env.step(env.action_space.sample())[0])
        runs.append(np.stack(frames))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_ppo_runs_in_the_shipped_league_dream() -> None:
    env = gym.make("Dream-League-v0")
    model = PPO("CnnPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
