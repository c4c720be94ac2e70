"""LaneSim-v0: API checks, rules (gold, abilities, towers, death and respawn), the expert."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers LaneSim-v0)
from data_collection.policies import make_policy
from envs import lane_sim as ls
from envs.lane import CENTER_BIN, LaneSimEnv

NOOP = np.array([CENTER_BIN, CENTER_BIN, 0, 0, 0, 0, 0])


def keys(attack=0, q=0, w=0, e=0, r=0) -> np.ndarray:
    return np.array([CENTER_BIN, CENTER_BIN, attack, q, w, e, r])


def empty_lane(seed: int = 0, **kwargs) -> LaneSimEnv:
    """A reset env with every minion removed and the enemy laner parked in its base."""
    env = LaneSimEnv(**kwargs)
    env.reset(seed=seed)
    u = env.sim.units
    u["kind"][ls.FIRST_MINION :] = ls.EMPTY
    env.sim.t = 1  # the next wave is WAVE_PERIOD - 1 steps away
    env.enemy.command = lambda sim, rng: ls.IDLE
    return env


def place(env: LaneSimEnv, kind: int, team: int, x: float, y: float, hp: float) -> int:
    """Put a training-dummy minion (it neither attacks nor walks) on the map; returns its slot."""
    sim = env.sim
    slot = (
        int(np.flatnonzero(sim.units["kind"][ls.FIRST_MINION :] == ls.EMPTY)[0]) + ls.FIRST_MINION
    )
    sim._init_unit(slot, kind, team, x, y)
    sim.units["hp"][slot] = hp
    sim.units["cd"][slot] = 10_000
    sim.units["speed"][slot] = 0.0
    return slot


def move_player(env: LaneSimEnv, x: float, y: float = 0.0) -> None:
    env.sim.units["x"][ls.PLAYER], env.sim.units["y"][ls.PLAYER] = x, y
    env.sim.move_target[ls.PLAYER] = x, y


def test_check_env_gymnasium_and_sb3():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(gym.make("LaneSim-v0", render_mode="rgb_array").unwrapped)
    sb3_check_env(LaneSimEnv(render_mode="rgb_array"), warn=True)


def test_spaces_and_render():
    env = gym.make("LaneSim-v0", render_mode="rgb_array", image_size=96)
    assert env.action_space == gym.spaces.MultiDiscrete([21, 21, 2, 2, 2, 2, 2])
    assert env.observation_space.shape == (96, 96, 3)
    assert env.observation_space.dtype == np.uint8
    obs, info = env.reset(seed=0)
    assert obs.shape == (96, 96, 3) and obs.dtype == np.uint8
    obs, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(env.render(), obs)
    assert LaneSimEnv().reset(seed=0)[0].shape == (64, 64, 3)
    assert LaneSimEnv().render() is None
    for key in ("gold", "health", "last_hits", "deaths", "kills", "cooldowns", "respawn_steps"):
        assert key in info


def test_render_anywhere_with_every_effect():
    """Units at random places (edges included) with all effects on never break the renderer."""
    rng = np.random.default_rng(0)
    for size in (16, 64, 80):
        env = LaneSimEnv(image_size=size)
        env.reset(seed=0)
        sim = env.sim
        sim.units["kind"][ls.FIRST_MINION :] = rng.integers(1, 3, ls.CAPACITY - ls.FIRST_MINION)
        sim.units["team"][ls.FIRST_MINION :] = rng.integers(0, 2, ls.CAPACITY - ls.FIRST_MINION)
        sim.units["hp"][ls.FIRST_MINION :] = 50.0
        sim.units["max_hp"][ls.FIRST_MINION :] = 100.0
        sim.timers[:, [ls.E_SPIN, ls.W_BUFF, ls.Q_BUFF]] = 5
        for _ in range(50):
            sim.units["x"] = rng.uniform(0, ls.LANE_LENGTH, ls.CAPACITY)
            sim.units["y"] = rng.uniform(-ls.HALF_HEIGHT, ls.HALF_HEIGHT, ls.CAPACITY)
            frame = env.renderer.draw(sim)
            assert frame.shape == (size, size, 3)


def test_deterministic_under_seed():
    def rollout(seed):
        env = LaneSimEnv()
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        frames, rewards, golds = [obs], [], []
        for _ in range(300):
            obs, reward, _, _, info = env.step(env.action_space.sample())
            frames.append(obs)
            rewards.append(reward)
            golds.append(info["enemy_gold"])
        return np.array(frames), np.array(rewards), golds, env.sim.units.copy()

    a, b, c = rollout(3), rollout(3), rollout(4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize(
    "action",
    [
        [10, 10, 0, 0, 0, 0],
        [[10, 10, 0, 0, 0, 0, 0]],
        [21, 10, 0, 0, 0, 0, 0],
        [10, -1, 0, 0, 0, 0, 0],
        [10, 10, 2, 0, 0, 0, 0],
        [10, 10, 0.5, 0, 0, 0, 0],
    ],
)
def test_bad_actions_raise_value_error(action):
    env = LaneSimEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.array(action))


def test_bad_arguments():
    with pytest.raises(RuntimeError, match="reset"):
        LaneSimEnv().step(NOOP)
    with pytest.raises(ValueError, match="difficulty"):
        LaneSimEnv(difficulty=1.5)
    with pytest.raises(ValueError, match="render_mode"):
        LaneSimEnv(render_mode="human")
    with pytest.raises(ValueError, match="image_size"):
        LaneSimEnv(image_size=8)


def test_truncation_and_no_termination():
    env = LaneSimEnv(episode_length=25)
    env.reset(seed=0)
    for t in range(25):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        assert truncated == (t == 24)


def test_move_target_is_held_until_next_click():
    env = empty_lane()
    move_player(env, 100.0)
    env.step(np.array([20, 10, 0, 0, 0, 0, 0]))  # click 32 u to the right
    assert env.sim.move_target[ls.PLAYER] == pytest.approx((132.0, 0.0))
    for _ in range(40):
        env.step(NOOP)  # no new click: keeps walking, then stops at the target
    assert env.sim.units["x"][ls.PLAYER] == pytest.approx(132.0)
    env.step(np.array([10, 0, 0, 0, 0, 0, 0]))  # click 32 u up (screen rows grow downward)
    assert env.sim.units["y"][ls.PLAYER] < 0.0


@pytest.mark.parametrize("kind, gold", [(ls.MELEE, 21), (ls.RANGED, 14)])
def test_last_hit_pays_minion_gold(kind, gold):
    env = empty_lane()
    move_player(env, 100.0)
    slot = place(env, kind, 1, 103.0, 0.0, hp=50.0)
    _, reward, _, _, info = env.step(keys(attack=1))
    assert info["gold"] == gold and info["last_hits"] == 1
    assert reward == pytest.approx(1e-3 * gold)
    assert env.sim.units["kind"][slot] == ls.EMPTY
    # A hit that does not kill pays nothing; the next hit waits for the attack period.
    slot = place(env, kind, 1, 103.0, 0.0, hp=500.0)
    for _ in range(ls.ATTACK_PERIOD[ls.CHAMPION] + 1):
        _, reward, _, _, info = env.step(keys(attack=1))
        assert reward == 0.0
    assert info["gold"] == gold
    assert env.sim.units["hp"][slot] == pytest.approx(500.0 - ls.ATTACK_DAMAGE[ls.CHAMPION])


def test_auto_attack_prefers_the_last_hit():
    env = empty_lane()
    move_player(env, 100.0)
    near = place(env, ls.MELEE, 1, 101.0, 0.0, hp=200.0)
    killable = place(env, ls.RANGED, 1, 104.0, 0.0, hp=40.0)
    _, _, _, _, info = env.step(keys(attack=1))
    assert info["last_hits"] == 1 and env.sim.units["kind"][killable] == ls.EMPTY
    assert env.sim.units["hp"][near] == pytest.approx(200.0)


def test_abilities():
    env = empty_lane()
    move_player(env, 100.0)
    # Q: the empowered hit kills a minion a plain hit would not, and starts Q's cooldown.
    place(env, ls.MELEE, 1, 103.0, 0.0, hp=100.0)
    _, _, _, _, info = env.step(keys(attack=1, q=1))
    assert info["gold"] == 21 and info["cooldowns"][0] == ls.COOLDOWN[0]
    # E: the spin hits every enemy minion around, six ticks of E_DAMAGE.
    slots = [place(env, ls.MELEE, 1, 100.0 + dx, 2.0, hp=200.0) for dx in (-5.0, 0.0, 5.0)]
    far = place(env, ls.MELEE, 1, 120.0, 0.0, hp=200.0)
    for _ in range(ls.E_STEPS):
        env.step(keys(e=1))
    hp = env.sim.units["hp"]
    np.testing.assert_allclose(hp[slots], 200.0 - 6 * ls.E_DAMAGE)
    assert hp[far] == 200.0
    # W halves a tower shot; R executes the enemy laner for 150 + 35% of its missing health.
    env.sim.units["kind"][ls.FIRST_MINION :] = ls.EMPTY
    move_player(env, ls.TOWER_X[1] - 5.0)
    env.step(keys(w=1))
    assert env.sim.units["hp"][ls.PLAYER] == pytest.approx(620.0 - 75.0 + ls.REGEN, abs=1.0)
    env.sim.units["x"][ls.ENEMY], env.sim.units["y"][ls.ENEMY] = ls.TOWER_X[1] - 1.0, 0.0
    env.sim.units["hp"][ls.ENEMY] = 250.0
    _, reward, _, _, info = env.step(keys(r=1))
    assert info["kills"] == 1 and info["gold"] == 21 + 300
    assert reward == pytest.approx(0.3)


def test_tower_shoots_minions_before_the_champion():
    env = empty_lane()
    move_player(env, ls.TOWER_X[1] - 10.0)
    cover = place(env, ls.MELEE, 0, ls.TOWER_X[1] - 5.0, -5.0, hp=240.0)
    env.step(NOOP)
    assert env.sim.units["hp"][cover] == pytest.approx(240.0 * (1 - 0.45))
    assert env.sim.units["hp"][ls.PLAYER] == pytest.approx(620.0)
    env.sim.units["kind"][cover] = ls.EMPTY
    for _ in range(ls.ATTACK_PERIOD[ls.TOWER]):
        env.step(NOOP)
    assert env.sim.units["hp"][ls.PLAYER] < 620.0 - 100.0


def test_death_penalty_and_respawn_at_base():
    env = empty_lane()
    move_player(env, ls.TOWER_X[1])
    env.sim.units["hp"][ls.PLAYER] = 10.0
    obs_alive = env.render() if env.render_mode else env.renderer.draw(env.sim)
    obs, reward, terminated, _, info = env.step(NOOP)
    assert info["deaths"] == 1 and reward == pytest.approx(-0.2) and not terminated
    assert info["respawn_steps"] == ls.RESPAWN_STEPS and info["health"] == 0.0
    assert obs.mean() < obs_alive.mean()  # the dead screen is darkened
    for _ in range(ls.RESPAWN_STEPS - 1):
        _, reward, _, _, info = env.step(np.array([20, 20, 1, 1, 1, 1, 1]))  # ignored while dead
        assert reward == 0.0
    assert info["health"] == 0.0
    _, _, _, _, info = env.step(NOOP)
    assert info["health"] == pytest.approx(620.0) and info["respawn_steps"] == 0
    assert info["position"][0] == pytest.approx(ls.CHAMP_SPAWN_X[0], abs=1.5)


def test_expert_earns_far_more_gold_than_random():
    env = LaneSimEnv(episode_length=500)
    gold = {}
    for kind in ("random", "expert"):
        policy = make_policy(kind, "LaneSim-v0")
        total = 0
        for seed in range(3):
            obs, _ = env.reset(seed=seed)
            policy.reset(env, seed)
            truncated = False
            while not truncated:
                obs, _, _, truncated, info = env.step(policy.act(obs))
            total += info["gold"]
        gold[kind] = total / 3
    assert gold["expert"] >= 100 and gold["expert"] > 5 * gold["random"] + 50, gold


def test_expert_holds_attack_on_a_killable_minion_while_its_attack_recharges():
    """The attack timer is not on screen, so the expert's attack key must not depend on it:
    a killable minion in range gets the key pressed whether or not the attack is ready."""
    env = empty_lane()
    u = env.sim.units
    ally = place(env, ls.MELEE, 0, u["x"][ls.PLAYER] + 3.0, 0.0, 400.0)
    foe = place(env, ls.MELEE, 1, u["x"][ally] + 1.0, 0.0, 10.0)  # tanked by the ally
    expert = make_policy("expert", "LaneSim-v0")
    expert.reset(env, 0)
    for cooldown in (0, 5):
        u["cd"][ls.PLAYER] = cooldown
        assert expert.act(None)[2] == 1, cooldown
    # not killable, not even by a Q-empowered hit, and too weak to push: the attack is saved
    u["hp"][foe] = u["ad"][ls.PLAYER] + ls.Q_BONUS + 20.0
    assert expert.act(None)[2] == 0
