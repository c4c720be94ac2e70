"""`LaneSim-v0`: a small League-of-Legends-style top lane with League's controls.

Action `MultiDiscrete([21, 21, 2, 2, 2, 2, 2])`: move-target column and row bins, then attack,
Q, W, E, R pressed or not. Move bin i is the screen coordinate i / 20 (0 = left/top edge,
20 = right/bottom edge), i.e. an offset of (i - 10) * `BIN_UNITS` world units from the champion
at the screen centre. A click sets the move target, which the champion walks to and holds until
the next click; the centre bin (10, 10) means no new click. Attack auto-attacks, if the attack is
ready: a minion in range that the hit kills (lowest health first), else the nearest enemy minion
or champion in range; a champion that attacks does not walk that step.
Q empowers the next attack (+60 damage, brief haste, resets the attack timer), W halves damage
taken for 2.5 s, E spins for 3 s (20 damage around every 0.5 s, no auto-attacks meanwhile), R
strikes the enemy champion within 8 u for 150 + 35% of its missing health (true damage: W does
not reduce it).

Observation: (image_size, image_size, 3) uint8, camera locked on the champion (see
`envs.lane_render`). One step is 0.05 game seconds (20 steps per second); episodes are
truncated after `episode_length` steps and never terminate: a dead champion respawns at the
allied base after 6 s (actions are ignored meanwhile and the screen is darkened). Reward:
`gold_scale` x gold earned (last hits: melee 21, ranged 14; champion kill 300) minus
`death_penalty` on each death. Info: gold, health, max_health, last_hits, kills, deaths,
respawn_steps, cooldowns (Q, W, E, R steps left), position (world units), enemy_health,
enemy_gold. Rules and units: `envs.lane_sim`.

The enemy laner is scripted (`EnemyLaner`): it stands behind its wave, last-hits, respects the
player's tower, trades now and then, goes for kills on a low champion and retreats when low.
`difficulty` in [0, 1] raises its damage (x 0.7 to 1.3), last-hit reliability and aggression.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs import lane_sim as ls
from envs.actions import is_integral
from envs.lane_render import VIEW, LaneRenderer

MOVE_BINS = 21
CENTER_BIN = MOVE_BINS // 2
BIN_UNITS = VIEW / 2 / CENTER_BIN  # world units between neighbouring move bins
NVEC = np.array([MOVE_BINS, MOVE_BINS, 2, 2, 2, 2, 2], np.int64)
_NVEC_LIST = NVEC.tolist()


def offset_to_bin(offset: float) -> int:
    """The move bin nearest to an offset from the champion (world units), clipped to the screen."""
    return int(min(max(round(offset / BIN_UNITS) + CENTER_BIN, 0), MOVE_BINS - 1))


class EnemyLaner:
    """Scripted policy of the enemy champion; `difficulty` in [0, 1]."""

    def __init__(self, difficulty: float) -> None:
        self.difficulty = difficulty
        self.retreating = False
        self.trade = 0  # steps left in the current trade with the player

    def reset(self) -> None:
        self.retreating, self.trade = False, 0

    def command(self, sim: ls.LaneSim, rng: np.random.Generator) -> ls.Command:
        u, me, foe, d = sim.units, ls.ENEMY, ls.PLAYER, self.difficulty
        if not sim.alive(me):
            self.reset()
            return ls.IDLE
        frac = u["hp"][me] / u["max_hp"][me]
        self.retreating = frac < 0.85 if self.retreating else frac < 0.3
        near_foe = sim.alive(foe) and sim.distance(me, foe) <= 8.0
        if self.retreating:
            goal = (ls.LANE_LENGTH - 3.0, 0.0)
            return ls.Command(goal, ls.NO_ATTACK, False, near_foe and d >= 0.5, False, False)
        kind, team, hp = u["kind"], u["team"], u["hp"]
        minion = ((kind == ls.MELEE) | (kind == ls.RANGED)) & (hp > 0)
        mine, theirs = minion & (team == 1), minion & (team == 0)
        x_goal = u["x"][mine].min() + 5.0 if mine.any() else ls.TOWER_X[1] - 6.0
        tanking = np.count_nonzero(mine & (np.abs(u["x"] - ls.TOWER_X[0]) < ls.TOWER_RANGE)) >= 2
        if not tanking:
            x_goal = max(x_goal, ls.TOWER_X[0] + ls.TOWER_RANGE + 3.0)
        goal = (x_goal, 2.0)
        attack = ls.NO_ATTACK
        low = theirs & (hp <= 2.0 * u["ad"][me]) & (u["x"] <= x_goal + 8.0)
        if low.any():
            target = int(np.argmin(np.where(low, hp, np.inf)))
            goal = (u["x"][target] + u["range"][me] - 1.0, u["y"][target])
            if hp[target] <= u["ad"][me] and rng.random() < 0.2 + 0.7 * d:
                attack = target
        q = w = e = r = False
        exposed = self._under_allied_tower(sim)
        if near_foe and not exposed:
            foe_frac = u["hp"][foe] / u["max_hp"][foe]
            kill = foe_frac < 0.35 and frac > 0.5
            if kill or (self.trade == 0 and rng.random() < 0.002 + 0.008 * d):
                self.trade = 40
            w = d >= 0.5 and sim.timers[foe, ls.AGGRO] > 0
        if self.trade > 0 and (frac < 0.5 or exposed or not sim.alive(foe)):
            self.trade = 0
        if self.trade > 0:
            self.trade -= 1
            goal, attack = (u["x"][foe], u["y"][foe]), foe
            q, e = d >= 0.3, d >= 0.6
            missing = u["max_hp"][foe] - u["hp"][foe]
            r = d >= 0.5 and ls.R_BASE + ls.R_MISSING * missing >= u["hp"][foe]
        return ls.Command(goal, attack, q, w, e, r)

    @staticmethod
    def _under_allied_tower(sim: ls.LaneSim) -> bool:
        """Whether the enemy laner stands in range of the player's tower."""
        u = sim.units
        dx, dy = u["x"][ls.ENEMY] - ls.TOWER_X[0], u["y"][ls.ENEMY] - ls.TOWER_Y
        return bool(np.hypot(dx, dy) <= ls.TOWER_RANGE)


GOLD_SCALE = 1e-3  # reward per gold earned ("solo gold")
DEATH_PENALTY = 0.2  # reward subtracted on each death


class LaneSimEnv(gym.Env):
    """Top-lane simulator with League's controls and a pixel observation."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": round(1 / ls.DT)}

    def __init__(
        self,
        render_mode: str | None = None,
        image_size: int = 64,
        episode_length: int = 1000,
        difficulty: float = 0.5,
        gold_scale: float = GOLD_SCALE,
        death_penalty: float = DEATH_PENALTY,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if episode_length < 1:
            raise ValueError(f"episode_length must be at least 1, got {episode_length}")
        self.render_mode = render_mode
        self.image_size = int(image_size)
        self.episode_length = int(episode_length)
        self.gold_scale = float(gold_scale)
        self.death_penalty = float(death_penalty)
        self.sim = ls.LaneSim(difficulty)
        self.enemy = EnemyLaner(float(difficulty))
        self.renderer = LaneRenderer(self.image_size)
        self.action_space = spaces.MultiDiscrete(NVEC)
        self.observation_space = spaces.Box(0, 255, (self.image_size,) * 2 + (3,), np.uint8)
        self._frame: np.ndarray | None = None
        self._steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.sim.reset(self.np_random)
        self.enemy.reset()
        self._steps = 0
        self._frame = self.renderer.draw(self.sim)
        return self._frame.copy(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._frame is None:
            raise RuntimeError("call reset() before step()")
        gold, died = self.sim.step(
            self._command(action), self.enemy.command(self.sim, self.np_random)
        )
        reward = self.gold_scale * gold - (self.death_penalty if died else 0.0)
        self._steps += 1
        self._frame = self.renderer.draw(self.sim)
        truncated = self._steps >= self.episode_length
        return self._frame.copy(), float(reward), False, truncated, self._info()

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._frame is None:
            raise RuntimeError("call reset() before render()")
        return self._frame.copy()

    def _command(self, action: Any) -> ls.Command:
        """Validate a MultiDiscrete action and turn it into the champion's command."""
        a = np.asarray(action)
        if a.shape != (7,):
            raise ValueError(
                f"action must have shape (7,) = (move x bin, move y bin, attack, Q, W, E, R), "
                f"got shape {a.shape}"
            )
        values = a.tolist()
        if not is_integral(a):
            raise ValueError(f"action must hold integers, got {values}")
        if not all(0 <= v < n for v, n in zip(values, _NVEC_LIST, strict=True)):
            raise ValueError(
                f"action {values} out of range: entry i must be in [0, {_NVEC_LIST}[i])"
            )
        bx, by, attack, q, w, e, r = (int(v) for v in values)
        move = None
        if (bx, by) != (CENTER_BIN, CENTER_BIN):
            u = self.sim.units
            move = (
                float(u["x"][ls.PLAYER]) + (bx - CENTER_BIN) * BIN_UNITS,
                float(u["y"][ls.PLAYER]) + (by - CENTER_BIN) * BIN_UNITS,
            )
        attack_slot = ls.AUTO_TARGET if attack else ls.NO_ATTACK
        return ls.Command(move, attack_slot, bool(q), bool(w), bool(e), bool(r))

    def _info(self) -> dict[str, Any]:
        sim, p = self.sim, ls.PLAYER
        u, score = sim.units, sim.score
        return {
            "gold": int(score[p, ls.GOLD_I]),
            "health": float(u["hp"][p]),
            "max_health": float(u["max_hp"][p]),
            "last_hits": int(score[p, ls.LAST_HITS_I]),
            "kills": int(score[p, ls.KILLS_I]),
            "deaths": int(score[p, ls.DEATHS_I]),
            "respawn_steps": int(sim.timers[p, ls.RESPAWN]),
            "cooldowns": sim.timers[p, :4].copy(),
            "position": np.array([u["x"][p], u["y"][p]]),
            "enemy_health": float(u["hp"][ls.ENEMY]),
            "enemy_gold": int(score[ls.ENEMY, ls.GOLD_I]),
        }
