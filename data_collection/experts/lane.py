"""Scripted top laner for `LaneSim-v0`: last-hits, trades with abilities, respects towers.

The expert reads the true lane state through `env.unwrapped.sim` and answers with the same
`MultiDiscrete([21, 21, 2, 2, 2, 2, 2])` actions a player gives (move-target bins and keys).
Behaviour, in priority order:
- dead: no input; hurt (below 30% health, or 45% with the enemy laner close and healthier):
  walk back to the fountain until 90% health.
- kill: an enemy laner below 35% health and out of its tower's reach is chased with Q, E and
  auto-attacks; R whenever its damage covers the enemy laner's health (in any state).
- farm: stand next to the lowest-health enemy minion that allied minions (or the allied tower)
  are tanking, and out of the aggro range of untanked enemy minions; hold attack while the hit
  would kill (with Q when only the empowered hit kills), and hit healthy minions only while every
  minion in range has plenty of health, so the attack is ready for the next last hit. The keys
  are held whether or not the attack is ready (the timer is not on screen), so they follow
  what the screen shows: a policy learning from pixels can see when to press them.
- never step into the enemy tower's range unless at least two allied minions are under it;
  shield (W) when hit hard or when the enemy laner is trading.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from data_collection.policies import Policy
from envs import lane_sim as ls
from envs.lane import BIN_UNITS, CENTER_BIN, offset_to_bin

RETREAT_AT, RETURN_AT = 0.3, 0.9
CHASE_BELOW = 0.35
PUSH_ABOVE = 150.0  # hit a healthy minion only while every minion in range has more health
HIT_HARD = 30.0  # health lost in one step that triggers the shield
FOCUS_GAP = 1.5  # farming goal: this far from the focus minion, on the expert's side


class LaneExpert(Policy):
    """Scripted LaneSim expert; `reset(env, seed)` then `act(obs)` per step."""

    def reset(self, env: Any, seed: int | None = None) -> None:
        super().reset(env, seed)
        self.retreating = False
        self.prev_hp = 0.0

    def act(self, obs: Any) -> np.ndarray:
        sim: ls.LaneSim = self.env.unwrapped.sim
        u, tm = sim.units, sim.timers
        me, foe = ls.PLAYER, ls.ENEMY
        action = np.array([CENTER_BIN, CENTER_BIN, 0, 0, 0, 0, 0], np.int64)
        hp = float(u["hp"][me])
        if hp <= 0:
            self.retreating, self.prev_hp = False, 0.0
            return action
        hit_hard = self.prev_hp - hp >= HIT_HARD
        self.prev_hp = hp
        frac = hp / u["max_hp"][me]
        foe_alive = sim.alive(foe)
        foe_frac = u["hp"][foe] / u["max_hp"][foe]
        foe_dist = sim.distance(me, foe) if foe_alive else np.inf
        threatened = foe_dist < 10.0 and foe_frac > frac + 0.15
        if self.retreating:
            self.retreating = frac < RETURN_AT
        else:
            self.retreating = frac < RETREAT_AT or (frac < 0.45 and threatened)
        action[4] = hit_hard or (foe_dist < 6.0 and tm[foe, ls.AGGRO] > 0)
        missing = u["max_hp"][foe] - u["hp"][foe]
        action[6] = foe_dist <= ls.R_RANGE and ls.R_BASE + ls.R_MISSING * missing >= u["hp"][foe]
        if self.retreating:
            goal = (2.0, 0.0)
        elif (
            foe_alive and foe_frac < CHASE_BELOW and frac > 0.5 and u["x"][foe] <= self._max_x(sim)
        ):
            goal = (float(u["x"][foe]), float(u["y"][foe]))
            action[2] = 1
            action[3] = foe_dist <= u["range"][me]
            action[5] = foe_dist <= ls.E_RADIUS
        else:
            goal = self._farm(sim, action)
        action[:2] = self._click(sim, goal)
        return action

    @staticmethod
    def _max_x(sim: ls.LaneSim) -> float:
        """How far toward the enemy tower the expert may stand."""
        u = sim.units
        ally = (u["team"] == 0) & ((u["kind"] == ls.MELEE) | (u["kind"] == ls.RANGED))
        covered = np.count_nonzero(ally & (u["x"] > ls.TOWER_X[1] - ls.TOWER_RANGE + 2.0)) >= 2
        return ls.TOWER_X[1] - (3.0 if covered else ls.TOWER_RANGE + 1.5)

    def _farm(self, sim: ls.LaneSim, action: np.ndarray) -> tuple[float, float]:
        """Goal next to the weakest enemy minion that allied minions are tanking, out of the
        aggro range of untanked ones; attack and Q keys for farming."""
        u, tm, me = sim.units, sim.timers, ls.PLAYER
        kind, hp, x, y = u["kind"], u["hp"], u["x"], u["y"]
        minion = ((kind == ls.MELEE) | (kind == ls.RANGED)) & (hp > 0)
        allies = minion & (u["team"] == 0)
        enemies = minion & (u["team"] == 1)
        limit = self._max_x(sim)
        if not enemies.any():
            front = x[allies].max() - 3.0 if allies.any() else ls.TOWER_X[0] + 8.0
            return min(front, limit), 0.0
        # An enemy minion is tanked when an allied minion or the allied tower is within its
        # aggro range; untanked ones would attack the expert.
        ex, ey = x[enemies], y[enemies]
        near_ally = np.hypot(ex[:, None] - x[allies], ey[:, None] - y[allies]) < ls.MINION_AGGRO
        tower = np.hypot(ex - ls.TOWER_X[0], ey - ls.TOWER_Y) < ls.MINION_AGGRO
        tanked = np.zeros(ls.CAPACITY, bool)
        tanked[enemies] = near_ally.any(axis=1) | tower
        if (enemies & ~tanked).any():
            limit = min(limit, x[enemies & ~tanked].min() - ls.MINION_AGGRO - 1.0)
        d = np.hypot(x - x[me], y - y[me])
        reach = enemies & (d <= u["range"][me])
        if reach.any():
            weakest = hp[reach].min()
            ad = float(u["ad"][me])
            if weakest <= sim.attack_damage(me):
                action[2] = 1
            elif weakest <= ad + ls.Q_BONUS and tm[me, ls.Q_CD] == 0:
                action[2] = action[3] = 1
            elif weakest > ad + PUSH_ABOVE and kind[sim.auto_target(me)] != ls.CHAMPION:
                action[2] = 1
        targets = enemies & tanked & (x <= limit + FOCUS_GAP)
        if not targets.any():
            return limit, 0.0
        focus = int(np.argmin(np.where(targets, hp, np.inf)))
        back = max(d[focus] - FOCUS_GAP, 0.0) / max(d[focus], 1e-9)  # share of the way to walk
        gx = x[me] + (x[focus] - x[me]) * back
        gy = y[me] + (y[focus] - y[me]) * back
        return float(min(gx, limit)), float(gy)

    @staticmethod
    def _click(sim: ls.LaneSim, goal: tuple[float, float]) -> tuple[int, int]:
        """Move-target bins for `goal`; the centre (no click) if the held target is close."""
        u, me = sim.units, ls.PLAYER
        held = sim.move_target[me]
        if np.hypot(held[0] - goal[0], held[1] - goal[1]) <= 0.8 * BIN_UNITS:
            return CENTER_BIN, CENTER_BIN
        ox, oy = goal[0] - u["x"][me], goal[1] - u["y"][me]
        longest = max(abs(ox), abs(oy))
        if longest > CENTER_BIN * BIN_UNITS:
            ox, oy = ox * CENTER_BIN * BIN_UNITS / longest, oy * CENTER_BIN * BIN_UNITS / longest
        bx, by = offset_to_bin(ox), offset_to_bin(oy)
        if (bx, by) == (CENTER_BIN, CENTER_BIN):  # goal within half a bin: step toward it
            if abs(ox) >= abs(oy):
                bx += 1 if ox >= 0 else -1
            else:
                by += 1 if oy >= 0 else -1
        return bx, by
