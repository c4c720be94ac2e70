"""LaneSim rules: one top lane simulated in numpy (minion waves, towers, two champions).

Units. Distances are world units (u): the default 64x64 camera shows 64 x 64 u, so 1 u is one
pixel. Time advances `DT` = 0.05 game seconds per step (20 steps per second); every timer counts
steps and speeds are u per step. Health and damage are League-like points.

Geometry. The lane runs along x from the allied base (x = 0) to the enemy base
(x = `LANE_LENGTH`); y runs across it (downward on screen). Lane ground is |y| <= `LANE_HALF_WIDTH`,
the walkable world |y| <= `HALF_HEIGHT`. Team 0 is the player's side, team 1 the enemy's.

State. Every unit (both champions, both towers, all minions) is one row of the structured array
`units` (fixed slots: 0 player, 1 enemy laner, 2 allied tower, 3 enemy tower, 4.. minions; an
empty slot has kind `EMPTY`). Champion-only state (move target, ability cooldowns, buffs,
respawn timer) is the two-row table `champs`; scores are the (2, 4) int array `score`.

Rules in brief. Minions walk down the lane and attack the nearest enemy within `MINION_AGGRO`,
preferring minions, then towers, then champions; a champion that damages the enemy champion
draws the aggro of nearby enemy minions and towers for `HARASS_AGGRO` steps. Towers attack
minions first and champions only without minion cover, and cannot be destroyed (the lane stays
stationary over long episodes). Attacks land instantly (no projectiles). Damage dealt by
champions resolves before minion and tower damage within a step, so a champion's last hit is
never stolen by a minion in the same step. A champion earns gold for last hits and for killing
the enemy champion (killing blow from any source within `ASSIST_STEPS` of its own damage).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

DT = 0.05
LANE_LENGTH = 240.0
HALF_HEIGHT = 20.0
LANE_HALF_WIDTH = 8.0
BASE_DEPTH = 12.0
CHAMP_SPAWN_X = (6.0, LANE_LENGTH - 6.0)
MINION_SPAWN_X = (40.0, LANE_LENGTH - 40.0)
TOWER_X = (72.0, LANE_LENGTH - 72.0)
TOWER_Y = -10.0
WAVE_PERIOD = 200
MINION_AGGRO = 16.0

PLAYER, ENEMY, ALLY_TOWER, ENEMY_TOWER = 0, 1, 2, 3
FIRST_MINION = 4
CAPACITY = 64

EMPTY, MELEE, RANGED, CHAMPION, TOWER = 0, 1, 2, 3, 4
# Per kind (indexed by kind): max health, attack damage, attack range (u), speed (u/step),
# attack period (steps), gold for the last hit.
MAX_HP = np.array([0.0, 300.0, 200.0, 620.0, 1.0])
ATTACK_DAMAGE = np.array([0.0, 20.0, 30.0, 60.0, 150.0])
ATTACK_RANGE = np.array([0.0, 3.0, 14.0, 4.5, 22.0])
SPEED = np.array([0.0, 0.8, 0.8, 1.2, 0.0])
ATTACK_PERIOD = np.array([1, 20, 30, 24, 20])
GOLD = np.array([0, 21, 14, 300, 0])
# Target choice of minions and towers: distance + penalty of the target's kind.
TARGET_PENALTY = np.array([np.inf, 0.0, 0.0, 200.0, 100.0])
TOWER_MINION_SHARE = np.array([0.0, 0.45, 0.7, 0.0, 0.0])  # a tower shot takes this share of max hp
TOWER_RANGE = ATTACK_RANGE[TOWER]

# Abilities, in order Q, W, E, R: cooldowns in steps.
COOLDOWN = np.array([160, 360, 180, 800])
Q_BONUS, Q_WINDOW, Q_HASTE, Q_HASTE_FACTOR = 60.0, 90, 30, 1.3
W_REDUCTION, W_STEPS = 0.5, 50
E_STEPS, E_TICK, E_DAMAGE, E_RADIUS = 60, 10, 20.0, 7.0
R_RANGE, R_BASE, R_MISSING = 8.0, 150.0, 0.35
RESPAWN_STEPS = 120
HARASS_AGGRO = 40
ASSIST_STEPS = 200
REGEN = 0.1  # hp per step
FOUNTAIN_HEAL = 0.02  # share of max hp per step inside one's own base

GOLD_I, LAST_HITS_I, KILLS_I, DEATHS_I = 0, 1, 2, 3
NO_ATTACK, AUTO_TARGET = -2, -1

UNIT_DTYPE = np.dtype(
    [
        ("x", "f8"),
        ("y", "f8"),
        ("hp", "f8"),
        ("max_hp", "f8"),
        ("ad", "f8"),
        ("range", "f8"),
        ("speed", "f8"),
        ("period", "i8"),
        ("cd", "i8"),  # steps until the next attack
        ("team", "i8"),
        ("kind", "i8"),
        ("lane_y", "f8"),  # y the minion keeps while marching
    ]
)
CHAMP_DTYPE = np.dtype(
    [
        ("tx", "f8"),  # move target
        ("ty", "f8"),
        ("respawn", "i8"),  # steps until respawn; 0 while alive
        ("cooldown", "i8", (4,)),  # Q, W, E, R
        ("q_buff", "i8"),  # steps the empowered strike stays ready
        ("haste", "i8"),
        ("w_buff", "i8"),
        ("e_spin", "i8"),
        ("aggro", "i8"),  # steps this champion draws enemy minion and tower aggro
        ("marked", "i8"),  # steps the foe gets kill credit for this champion's death
    ]
)


class Command(NamedTuple):
    """One champion's input for one step.

    `move` is a new move target in world units (None keeps the held one); `attack` is a unit
    slot, `AUTO_TARGET` (pick with `auto_target`) or `NO_ATTACK`.
    """

    move: tuple[float, float] | None
    attack: int
    q: bool
    w: bool
    e: bool
    r: bool


IDLE = Command(None, NO_ATTACK, False, False, False, False)


class LaneSim:
    """The lane's state and rules: `reset(rng)`, then `step(player, enemy)` once per step."""

    def __init__(self, difficulty: float = 0.5) -> None:
        if not 0.0 <= difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
        self.difficulty = float(difficulty)
        self.units = np.zeros(CAPACITY, UNIT_DTYPE)
        self.champs = np.zeros(2, CHAMP_DTYPE)
        self.score = np.zeros((2, 4), np.int64)
        self.t = 0
        self.rng = np.random.default_rng(0)

    # ----------------------------------------------------------------------------- set-up
    def reset(self, rng: np.random.Generator) -> None:
        """Both champions at their bases, towers up, the first wave spawning."""
        self.rng = rng
        self.t = 0
        self.units[:] = 0
        self.champs[:] = 0
        self.score[:] = 0
        for slot, team in ((PLAYER, 0), (ENEMY, 1)):
            self._init_unit(slot, CHAMPION, team, CHAMP_SPAWN_X[team], 0.0)
            self.champs[slot]["tx"], self.champs[slot]["ty"] = CHAMP_SPAWN_X[team], 0.0
        self._init_unit(ALLY_TOWER, TOWER, 0, TOWER_X[0], TOWER_Y)
        self._init_unit(ENEMY_TOWER, TOWER, 1, TOWER_X[1], TOWER_Y)
        self.units["ad"][ENEMY] *= 0.7 + 0.6 * self.difficulty
        self._spawn_waves()

    def _init_unit(self, slot: int, kind: int, team: int, x: float, y: float) -> None:
        u = self.units[slot : slot + 1]
        u["x"], u["y"], u["lane_y"], u["team"], u["kind"] = x, y, y, team, kind
        u["hp"] = u["max_hp"] = MAX_HP[kind]
        u["ad"], u["range"], u["speed"] = ATTACK_DAMAGE[kind], ATTACK_RANGE[kind], SPEED[kind]
        u["period"], u["cd"] = ATTACK_PERIOD[kind], 0

    def _spawn_waves(self) -> None:
        """Three melee minions in front, three ranged behind, per team (if slots are free)."""
        free = np.flatnonzero(self.units["kind"][FIRST_MINION:] == EMPTY) + FIRST_MINION
        jitter = self.rng.uniform(-0.5, 0.5, (2, 6, 2))
        i = 0
        for team, sign in ((0, 1.0), (1, -1.0)):
            for j, (kind, back, lane_y) in enumerate(
                [(MELEE, 0.0, y) for y in (-3.0, 0.0, 3.0)]
                + [(RANGED, 5.0, y) for y in (-3.0, 0.0, 3.0)]
            ):
                if i == len(free):
                    return
                x = MINION_SPAWN_X[team] - sign * back + jitter[team, j, 0]
                self._init_unit(free[i], kind, team, x, lane_y + jitter[team, j, 1])
                i += 1

    # ----------------------------------------------------------------------------- queries
    def alive(self, slot: int) -> bool:
        """Whether the unit in `slot` is on the map."""
        return bool(self.units["kind"][slot] != EMPTY and self.units["hp"][slot] > 0)

    def distance(self, a: int, b: int) -> float:
        u = self.units
        return float(np.hypot(u["x"][a] - u["x"][b], u["y"][a] - u["y"][b]))

    def attack_damage(self, c: int) -> float:
        """Damage of champion `c`'s next auto-attack (the empowered strike included)."""
        return float(self.units["ad"][c] + (Q_BONUS if self.champs["q_buff"][c] > 0 else 0.0))

    def auto_target(self, c: int) -> int:
        """Champion `c`'s auto-attack target: a minion in range that this hit kills (lowest
        health first), else the nearest enemy minion or champion in range; -1 if none."""
        u = self.units
        kind, hp = u["kind"], u["hp"]
        d = np.hypot(u["x"] - u["x"][c], u["y"] - u["y"][c])
        ok = (u["team"] != u["team"][c]) & (hp > 0) & (kind != EMPTY) & (kind != TOWER)
        ok &= d <= u["range"][c]
        if not ok.any():
            return -1
        killable = ok & (kind != CHAMPION) & (hp <= self.attack_damage(c))
        if killable.any():
            return int(np.argmin(np.where(killable, hp, np.inf)))
        return int(np.argmin(np.where(ok, d, np.inf)))

    # ----------------------------------------------------------------------------- step
    def step(self, player: Command, enemy: Command = IDLE) -> tuple[int, bool]:
        """Advance one step with both champions' commands.

        Returns (gold the player earned, whether the player died).
        """
        gold_before = int(self.score[PLAYER, GOLD_I])
        deaths_before = int(self.score[PLAYER, DEATHS_I])
        self.t += 1
        self._tick_timers()
        if self.t % WAVE_PERIOD == 0:
            self._spawn_waves()
        self._champion_step(PLAYER, player)
        self._champion_step(ENEMY, enemy)
        self._minions_and_towers()
        self._resolve_champions()
        gold = int(self.score[PLAYER, GOLD_I]) - gold_before
        return gold, int(self.score[PLAYER, DEATHS_I]) > deaths_before

    def _tick_timers(self) -> None:
        u, ch = self.units, self.champs
        np.maximum(u["cd"] - 1, 0, out=u["cd"])
        for name in ("q_buff", "haste", "w_buff", "aggro", "marked", "cooldown"):
            np.maximum(ch[name] - 1, 0, out=ch[name])
        for c in (PLAYER, ENEMY):
            if ch["respawn"][c] > 0:
                ch["respawn"][c] -= 1
                if ch["respawn"][c] == 0:
                    team = int(u["team"][c])
                    u["hp"][c] = u["max_hp"][c]
                    u["x"][c], u["y"][c] = CHAMP_SPAWN_X[team], 0.0
                    ch["tx"][c], ch["ty"][c] = CHAMP_SPAWN_X[team], 0.0

    def _champion_step(self, c: int, cmd: Command) -> None:
        u, ch = self.units, self.champs
        if not self.alive(c):
            return
        foe = 1 - c
        cd = ch["cooldown"][c]
        if cmd.w and cd[1] == 0:
            ch["w_buff"][c], cd[1] = W_STEPS, COOLDOWN[1]
        if cmd.q and cd[0] == 0:
            ch["q_buff"][c], ch["haste"][c], cd[0] = Q_WINDOW, Q_HASTE, COOLDOWN[0]
            u["cd"][c] = 0
        if cmd.e and cd[2] == 0:
            ch["e_spin"][c], cd[2] = E_STEPS, COOLDOWN[2]
        if cmd.r and cd[3] == 0 and self.alive(foe) and self.distance(c, foe) <= R_RANGE:
            missing = u["max_hp"][foe] - u["hp"][foe]
            self._damage(c, foe, R_BASE + R_MISSING * missing, true_damage=True)
            cd[3] = COOLDOWN[3]
        attacked = False
        if cmd.attack != NO_ATTACK and u["cd"][c] == 0 and ch["e_spin"][c] == 0:
            target = self.auto_target(c) if cmd.attack == AUTO_TARGET else cmd.attack
            if target >= 0 and self._can_hit(c, target):
                self._damage(c, target, self.attack_damage(c))
                ch["q_buff"][c] = 0
                u["cd"][c] = u["period"][c]
                attacked = True
        if ch["e_spin"][c] > 0:
            if ch["e_spin"][c] % E_TICK == 0:
                self._spin(c)
            ch["e_spin"][c] -= 1
        if cmd.move is not None:
            ch["tx"][c] = min(max(cmd.move[0], 0.0), LANE_LENGTH)
            ch["ty"][c] = min(max(cmd.move[1], -HALF_HEIGHT), HALF_HEIGHT)
        if not attacked:
            self._walk(c)

    def _can_hit(self, c: int, target: int) -> bool:
        u = self.units
        return (
            self.alive(target)
            and u["team"][target] != u["team"][c]
            and u["kind"][target] != TOWER
            and self.distance(c, target) <= u["range"][c]
        )

    def _spin(self, c: int) -> None:
        u = self.units
        d = np.hypot(u["x"] - u["x"][c], u["y"] - u["y"][c])
        hit = (u["team"] != u["team"][c]) & (u["hp"] > 0) & (d <= E_RADIUS)
        hit &= (u["kind"] != EMPTY) & (u["kind"] != TOWER)
        for target in np.flatnonzero(hit):
            self._damage(c, int(target), E_DAMAGE)

    def _walk(self, c: int) -> None:
        u, ch = self.units, self.champs
        dx, dy = ch["tx"][c] - u["x"][c], ch["ty"][c] - u["y"][c]
        dist = float(np.hypot(dx, dy))
        if dist == 0.0:
            return
        speed = u["speed"][c] * (Q_HASTE_FACTOR if ch["haste"][c] > 0 else 1.0)
        step = min(speed, dist) / dist
        u["x"][c] += dx * step
        u["y"][c] += dy * step

    def _damage(self, c: int, target: int, amount: float, true_damage: bool = False) -> None:
        """Champion `c` damages `target`; last hits pay gold at once."""
        u, ch = self.units, self.champs
        kind = u["kind"][target]
        if kind == CHAMPION:
            if not true_damage and ch["w_buff"][target] > 0:
                amount *= 1.0 - W_REDUCTION
            ch["aggro"][c], ch["marked"][target] = HARASS_AGGRO, ASSIST_STEPS
        u["hp"][target] -= amount
        if kind != CHAMPION and u["hp"][target] <= 0:
            self.score[c, GOLD_I] += GOLD[kind]
            self.score[c, LAST_HITS_I] += 1
            u["kind"][target] = EMPTY

    def _minions_and_towers(self) -> None:
        """Targeting, attacks and movement of every minion and tower, vectorized."""
        u = self.units
        kind, hp, x, y, team = u["kind"], u["hp"], u["x"], u["y"], u["team"]
        alive = (kind != EMPTY) & (hp > 0)
        src = np.flatnonzero(alive & (kind != CHAMPION))
        dx = x[None, :] - x[src, None]  # (S, N): source -> every slot
        dy = y[None, :] - y[src, None]
        d = np.hypot(dx, dy)
        reach = np.where(kind[src] == TOWER, u["range"][src], MINION_AGGRO)
        cost = d + TARGET_PENALTY[kind][None, :]
        cost[:, :2] -= 300.0 * (self.champs["aggro"] > 0)  # harassing champions draw aggro
        invalid = (team[None, :] == team[src, None]) | ~alive[None, :] | (d > reach[:, None])
        invalid |= (kind[src, None] == TOWER) & (kind[None, :] == TOWER)
        cost[invalid] = np.inf
        rows = np.arange(len(src))
        target = cost.argmin(axis=1)
        has = np.isfinite(cost[rows, target])
        dist = d[rows, target]
        in_range = has & (dist <= u["range"][src])
        fire = in_range & (u["cd"][src] == 0)
        shooters, victims = src[fire], target[fire]
        amount = u["ad"][shooters]
        share = TOWER_MINION_SHARE[kind[victims]]
        amount = np.where((kind[shooters] == TOWER) & (share > 0), share * MAX_HP[kind[victims]], amount)
        damage = np.zeros(CAPACITY)
        np.add.at(damage, victims, amount)
        damage[:2] *= np.where(self.champs["w_buff"] > 0, 1.0 - W_REDUCTION, 1.0)
        damage[kind == TOWER] = 0.0
        u["hp"] -= damage
        u["cd"][shooters] = u["period"][shooters]
        self._move_minions(src, target, has, in_range, dist, dx, dy, rows)
        u["kind"][((kind == MELEE) | (kind == RANGED)) & (hp <= 0)] = EMPTY

    def _move_minions(self, src, target, has, in_range, dist, dx, dy, rows) -> None:
        """Minions without a target in range walk: toward their target, else down the lane."""
        u = self.units
        move = (u["kind"][src] != TOWER) & ~in_range
        chase = move & has
        ci = rows[chase]
        step_x = np.zeros(len(src))
        step_y = np.zeros(len(src))
        if ci.size:
            gap = dist[ci]
            frac = np.minimum(u["speed"][src[ci]], gap - u["range"][src[ci]] + 0.1) / gap
            step_x[ci] = dx[ci, target[ci]] * frac
            step_y[ci] = dy[ci, target[ci]] * frac
        march = rows[move & ~has]
        if march.size:
            s = src[march]
            goal_x = np.where(u["team"][s] == 0, LANE_LENGTH, 0.0)
            gx, gy = goal_x - u["x"][s], u["lane_y"][s] - u["y"][s]
            norm = np.maximum(np.hypot(gx, gy), 1e-9)
            frac = np.minimum(u["speed"][s], norm) / norm
            step_x[march], step_y[march] = gx * frac, gy * frac
        u["x"][src] += step_x
        u["y"][src] += step_y

    def _resolve_champions(self) -> None:
        """Deaths (with kill credit), regeneration and fountain healing."""
        u, ch = self.units, self.champs
        for c in (PLAYER, ENEMY):
            if ch["respawn"][c] > 0:
                continue
            if u["hp"][c] <= 0:
                foe = 1 - c
                u["hp"][c] = 0.0
                ch["respawn"][c] = RESPAWN_STEPS
                ch["e_spin"][c] = ch["w_buff"][c] = ch["q_buff"][c] = ch["aggro"][c] = 0
                self.score[c, DEATHS_I] += 1
                if ch["marked"][c] > 0:
                    self.score[foe, KILLS_I] += 1
                    self.score[foe, GOLD_I] += GOLD[CHAMPION]
                team = int(u["team"][c])
                u["x"][c], u["y"][c] = CHAMP_SPAWN_X[team], 0.0
                ch["tx"][c], ch["ty"][c] = CHAMP_SPAWN_X[team], 0.0
                continue
            in_base = u["x"][c] < BASE_DEPTH if c == PLAYER else u["x"][c] > LANE_LENGTH - BASE_DEPTH
            heal = REGEN + (FOUNTAIN_HEAL * u["max_hp"][c] if in_base else 0.0)
            u["hp"][c] = min(u["hp"][c] + heal, u["max_hp"][c])
