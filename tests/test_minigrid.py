"""MiniGrid pixel env (envs.minigrid) and its shortest-path expert."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from minigrid.core.world_object import Door, Key
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import envs  # noqa: F401  (registers the ids)
from data_collection.experts.minigrid import MiniGridPlanner
from data_collection.policies import Policy, make_policy
from envs.minigrid import MiniGridPixelsEnv

EMPTY = "MiniGridPixels-Empty-8x8-v0"
DOORKEY = "MiniGridPixels-DoorKey-8x8-v0"


def run_episode(env: gym.Env, policy: Policy, seed: int) -> tuple[bool, int]:
    """(success, number of steps) of one episode."""
    obs, _ = env.reset(seed=seed)
    policy.reset(env, seed)
    for steps in range(1, 10_000):
        obs, _, terminated, truncated, info = env.step(policy.act(obs))
        if terminated or truncated:
            return info["success"], steps
    raise AssertionError("episode did not end")


@pytest.mark.parametrize("env_id", [f"envs:{DOORKEY}", EMPTY])
@pytest.mark.parametrize("kwargs", [{}, {"render_mode": "rgb_array"}, {"obs_mode": "symbolic"}])
def test_env_checkers_pass(env_id: str, kwargs: dict) -> None:
    env = gym.make(env_id, **kwargs)
    check_env(env.unwrapped)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The minimal resolution")  # symbolic 8x8 grid
        sb3_check_env(env)


def test_pixel_observation_and_render() -> None:
    env = gym.make(DOORKEY, render_mode="rgb_array")
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.Discrete(7)
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert info == {"success": False}
    assert len(np.unique(obs.reshape(-1, 3), axis=0)) > 3  # walls, floor, agent, key, door, goal
    np.testing.assert_array_equal(env.render(), obs)
    obs2, *_ = env.step(1)  # turning right redraws the agent
    assert not np.array_equal(obs, obs2)


@pytest.mark.parametrize(
    ("task", "shape"),
    [("MiniGrid-Empty-5x5-v0", (60, 60, 3)), ("MiniGrid-Empty-16x16-v0", (64, 64, 3))],
)
def test_other_grid_sizes_use_tile_64_over_size(task: str, shape: tuple) -> None:
    env = MiniGridPixelsEnv(task)
    assert env.observation_space.shape == shape
    assert env.reset(seed=0)[0].shape == shape


def test_symbolic_observation_encodes_grid_and_agent() -> None:
    env = gym.make(DOORKEY, obs_mode="symbolic")
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    m = env.unwrapped.minigrid_env
    x, y = m.agent_pos
    assert obs["direction"] == m.agent_dir
    np.testing.assert_array_equal(obs["grid"][x, y], [10, 0, m.agent_dir])  # agent, red, dir
    assert (obs["grid"][..., 0] == 5).sum() == 1  # one key
    assert (obs["grid"][..., 0] == 4).sum() == 1  # one door
    assert obs["grid"].shape == (8, 8, 3) and obs["grid"].dtype == np.uint8


@pytest.mark.parametrize("obs_mode", ["pixels", "symbolic"])
def test_same_seed_and_actions_give_same_episode(obs_mode: str) -> None:
    actions = np.random.default_rng(0).integers(0, 7, 200)

    def rollout(seed: int) -> tuple[list, list]:
        env = gym.make(DOORKEY, obs_mode=obs_mode, max_steps=1000)
        obs, _ = env.reset(seed=seed)
        observations, rewards = [obs], []
        for action in actions:
            obs, reward, *_ = env.step(action)
            observations.append(obs)
            rewards.append(reward)
        return observations, rewards

    first, second, other = rollout(7), rollout(7), rollout(8)
    assert first[1] == second[1]
    for a, b in zip(first[0], second[0], strict=True):
        np.testing.assert_array_equal(_frame_of(a), _frame_of(b))
        if obs_mode == "symbolic":
            assert a["direction"] == b["direction"]
    assert not np.array_equal(_frame_of(first[0][0]), _frame_of(other[0][0]))


def _frame_of(obs) -> np.ndarray:
    return obs["grid"] if isinstance(obs, dict) else obs


@pytest.mark.parametrize(
    "action",
    [7, -1, 2.5, 7.0, float("nan"), float("inf"), np.array([1, 2]), np.array([1]), "2", None],
)
def test_bad_actions_raise_clear_error(action) -> None:
    env = gym.make(DOORKEY)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"integer in \[0, 6\]"):
        env.step(action)


@pytest.mark.parametrize("action", [2, np.int64(2), np.array(2), np.uint8(2), 2.0, np.float32(2)])
def test_integer_actions_of_any_kind_are_accepted(action) -> None:
    env = gym.make(DOORKEY)
    env.reset(seed=0)
    after_int = gym.make(DOORKEY)
    after_int.reset(seed=0)
    assert np.array_equal(_frame_of(env.step(action)[0]), _frame_of(after_int.step(2)[0]))


def test_bad_construction_and_step_before_reset() -> None:
    with pytest.raises(ValueError, match="obs_mode"):
        MiniGridPixelsEnv(obs_mode="rgb")
    with pytest.raises(ValueError, match="MiniGrid id"):
        MiniGridPixelsEnv("MiniGrid-NoSuchTask-v0")
    with pytest.raises(ValueError, match="not a MiniGrid env"):
        MiniGridPixelsEnv("CartPole-v1")
    with pytest.raises(RuntimeError, match="reset"):
        MiniGridPixelsEnv().step(0)


def test_max_steps_truncates() -> None:
    env = gym.make(DOORKEY, max_steps=5)
    env.reset(seed=0)
    ends = [env.step(6)[3] for _ in range(5)]  # 'done' is a no-op
    assert ends == [False] * 4 + [True]


@pytest.mark.parametrize(("env_id", "max_mean_length"), [(EMPTY, 11), (DOORKEY, 30)])
def test_planner_solves_every_seed(env_id: str, max_mean_length: float) -> None:
    env = gym.make(env_id)
    results = [run_episode(env, MiniGridPlanner(), seed) for seed in range(50)]
    assert all(success for success, _ in results)
    assert np.mean([steps for _, steps in results]) <= max_mean_length  # Empty: 11 is optimal


def test_planner_drives_pixel_env_and_reports_success() -> None:
    env = gym.make(DOORKEY)
    assert run_episode(env, make_policy("expert", DOORKEY), seed=0)[0]


def test_planner_picks_up_a_key_that_blocks_the_way() -> None:
    env = gym.make(DOORKEY, obs_mode="symbolic")
    m = env.unwrapped.minigrid_env
    for seed in range(100):  # a layout whose left room is one cell wide (door in column 2)
        env.reset(seed=seed)
        door = next(
            (m.grid.get(2, y) for y in range(m.height) if isinstance(m.grid.get(2, y), Door)), None
        )
        if door is not None:
            break
    assert door is not None, "no seed in range(100) puts the door in column 2"
    door_y = int(door.cur_pos[1])
    step = 1 if door_y + 2 < m.height - 1 else -1
    m.grid.set(*next(p for p in _positions(m, Key)), None)
    door.is_locked, door.is_open = False, True
    m.grid.set(1, door_y + step, Key(door.color))
    m.agent_pos, m.agent_dir = (1, door_y + 2 * step), 1 if step < 0 else 3
    policy = MiniGridPlanner()
    policy.reset(env, 0)
    for _ in range(50):
        _, _, terminated, _, info = env.step(policy.act(None))
        if terminated:
            break
    assert info["success"]


def _positions(m, kind: type) -> list[tuple[int, int]]:
    return [
        (x, y)
        for x in range(m.width)
        for y in range(m.height)
        if isinstance(m.grid.get(x, y), kind)
    ]


def test_planner_rejects_other_envs() -> None:
    with pytest.raises(ValueError, match="MiniGridPixelsEnv"):
        MiniGridPlanner().reset(gym.make("CartPole-v1"), 0)


@pytest.mark.parametrize("env_id", [EMPTY, DOORKEY])
def test_noisy_expert_still_solves(env_id: str) -> None:
    env = gym.make(env_id, obs_mode="symbolic")
    policy = make_policy("noisy", env_id, epsilon=0.3)
    assert all(run_episode(env, policy, seed)[0] for seed in range(10))
