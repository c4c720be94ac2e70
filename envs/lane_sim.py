"""LaneSim rules: one top lane simulated in numpy (minion waves, towers, two champions).

Units. Distances are world units (u): the default 64x64 camera shows 64 x 64 u, so 1 u is one
pixel. Time advances `DT` = 0.05 game seconds per step (20 steps per second); every timer counts
steps and speeds are u per step. Health and damage are League-like points.

Geometry. The lane runs along x from the allied base (x = 0) to the enemy base
(x = `LANE_LENGTH`); y runs across it (downward on screen). Lane ground is |y| <= `LANE_HALF_WIDTH`,
the walkable world |y| <= `HALF_HEIGHT`. Team 0 is the player's side, team 1 the enemy's.

State, in four arrays. `units`: one row per unit of a structured array (fixed slots: 0 player,
1 enemy laner, 2 allied tower, 3 enemy tower, 4.. minions; an empty slot has kind `EMPTY`).
`timers`: (2, 11) int steps per champion (ability cooldowns, buffs, respawn; columns `Q_CD`..).
`move_target`: (2, 2) float, each champion's held move target. `score`: (2, 4) int per champion
(gold, last hits, kills, deaths).

Rules in brief. A wave of three melee and three ranged minions spawns per side every
`WAVE_PERIOD` steps (the first at reset). Minions walk down the lane and attack an enemy within
`MINION_AGGRO`, preferring minions, then towers, then champions, and among those near and weak
ones (so they focus fire); minions closer than `SPACING` push apart. A champion that damages
the enemy champion draws the aggro of nearby enemy minions and towers for `HARASS_AGGRO` steps.
Towers attack minions first and champions only without minion cover, and cannot be destroyed
(the lane stays stationary over long episodes). Attacks land instantly (no projectiles). Damage
dealt by champions resolves before minion and tower damage within a step, so a champion's last
hit is never stolen by a minion in the same step. A champion earns gold for last hits and for
killing the enemy champion (killing blow from any source within `ASSIST_STEPS` of its own
damage). Champions regenerate `REGEN` health per step, heal fast in their own base, and
respawn there `RESPAWN_STEPS` after dying. If all minion slots are taken, a wave spawns partly.
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
SPACING = 2.5  # minions closer than this push each other apart

PLAYER, ENEMY, ALLY_TOWER, ENEMY_TOWER = 0, 1, 2, 3
FIRST_MINION = 4
CAPACITY = 64

EMPTY, MELEE, RANGED, CHAMPION, TOWER = 0, 1, 2, 3, 4
# A wave, per minion: (kind, distance behind the spawn point, lane y).
WAVE = tuple(
    (kind, back, y) for kind, back in ((MELEE, 0.0), (RANGED, 5.0)) for y in (-3.0, 0.0, 3.0)
)
# Per kind (indexed by kind): max health, attack damage, attack range (u), speed (u/step),
# attack period (steps), gold for the last hit (the champion entry: a kill).
MAX_HP = np.array([0.0, 240.0, 160.0, 620.0, 1.0])
ATTACK_DAMAGE = np.array([0.0, 20.0, 30.0, 60.0, 150.0])
ATTACK_RANGE = np.array([0.0, 3.0, 14.0, 4.5, 22.0])
SPEED = np.array([0.0, 0.8, 0.8, 1.2, 0.0])
ATTACK_PERIOD = np.array([1, 12, 15, 24, 20])
GOLD = np.array([0, 21, 14, 300, 0])
# Targeting of minions and towers: a target's cost is its distance plus the penalty of its kind
# plus FOCUS times its health fraction (so nearby minions focus the weakest target); a unit
# looks for targets within its reach (champions are driven by commands instead).
FOCUS = 6.0
TARGET_PENALTY = np.array([np.inf, 0.0, 0.0, 200.0, 100.0])
REACH = np.array([0.0, MINION_AGGRO, MINION_AGGRO, 0.0, ATTACK_RANGE[TOWER]])
DAMAGE_TAKEN = np.array([0.0, 1.0, 1.0, 1.0, 0.0])  # towers are invulnerable
TOWER_MINION_SHARE = np.array([0.0, 0.45, 0.7, 0.0, 0.0])  # a tower shot takes this share of max hp
TOWER_RANGE = ATTACK_RANGE[TOWER]

# Abilities Q, W, E, R.
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

# Columns of `timers`; the first `TICKING` count down by one every step.
Q_CD, W_CD, E_CD, R_CD, Q_BUFF, HASTE, W_BUFF, AGGRO, MARKED, E_SPIN, RESPAWN = range(11)
N_TIMERS, TICKING = 11, 9
# Columns of `score`.
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
        ("lane_y", "f8"),  # y a minion keeps while marching
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
        self.timers = np.zeros((2, N_TIMERS), np.int64)
        self.move_target = np.zeros((2, 2))
        self.score = np.zeros((2, 4), np.int64)
        self.t = 0
        self.rng = np.random.default_rng(0)

    def reset(self, rng: np.random.Generator) -> None:
        """Both champions at their bases, towers up, the first wave spawning."""
        self.rng = rng
        self.t = 0
        self.units[:] = 0
        self.timers[:] = 0
        self.score[:] = 0
        for slot in (PLAYER, ENEMY):
            self._init_unit(slot, CHAMPION, slot, CHAMP_SPAWN_X[slot], 0.0)
            self.move_target[slot] = CHAMP_SPAWN_X[slot], 0.0
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
        """Three melee minions in front, three ranged behind, per team (while slots are free)."""
        free = np.flatnonzero(self.units["kind"][FIRST_MINION:] == EMPTY) + FIRST_MINION
        jitter = self.rng.uniform(-0.5, 0.5, (2, 6, 2))
        for i, (team, j) in enumerate((team, j) for team in (0, 1) for j in range(6)):
            if i == len(free):
                return
            kind, back, lane_y = WAVE[j]
            x = MINION_SPAWN_X[team] + (back if team else -back) + jitter[team, j, 0]
            self._init_unit(free[i], kind, team, x, lane_y + jitter[team, j, 1])

    # ----------------------------------------------------------------------------- queries
    def alive(self, slot: int) -> bool:
        """Whether the unit in `slot` is on the map."""
        return bool(self.units["kind"][slot] != EMPTY and self.units["hp"][slot] > 0)

    def distance(self, a: int, b: int) -> float:
        u = self.units
        return float(np.hypot(u["x"][a] - u["x"][b], u["y"][a] - u["y"][b]))

    def attack_damage(self, c: int) -> float:
        """Damage of champion `c`'s next auto-attack (the empowered strike included)."""
        return float(self.units["ad"][c]) + (Q_BONUS if self.timers[c, Q_BUFF] > 0 else 0.0)

    def auto_target(self, c: int) -> int:
        """Champion `c`'s auto-attack target: a minion in range that this hit kills (lowest
        health first), else the nearest enemy minion or champion in range; -1 if none."""
        u = self.units
        kind, hp = u["kind"], u["hp"]
        d = np.hypot(u["x"] - u["x"][c], u["y"] - u["y"][c])
        ok = (u["team"] != c) & (hp > 0) & (DAMAGE_TAKEN[kind] > 0) & (d <= u["range"][c])
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
        u, ticking = self.units, self.timers[:, :TICKING]
        np.maximum(u["cd"] - 1, 0, out=u["cd"])
        np.maximum(ticking - 1, 0, out=ticking)
        for c in (PLAYER, ENEMY):
            if self.timers[c, RESPAWN] > 0:
                self.timers[c, RESPAWN] -= 1
                if self.timers[c, RESPAWN] == 0:
                    u["hp"][c] = u["max_hp"][c]
                    u["x"][c], u["y"][c] = CHAMP_SPAWN_X[c], 0.0
                    self.move_target[c] = CHAMP_SPAWN_X[c], 0.0

    def _champion_step(self, c: int, cmd: Command) -> None:
        u, tm = self.units, self.timers[c]
        if u["hp"][c] <= 0:
            return
        foe = 1 - c
        if cmd.w and tm[W_CD] == 0:
            tm[W_BUFF], tm[W_CD] = W_STEPS, COOLDOWN[1]
        if cmd.q and tm[Q_CD] == 0:
            tm[Q_BUFF], tm[HASTE], tm[Q_CD] = Q_WINDOW, Q_HASTE, COOLDOWN[0]
            u["cd"][c] = 0
        if cmd.e and tm[E_CD] == 0:
            tm[E_SPIN], tm[E_CD] = E_STEPS, COOLDOWN[2]
        if cmd.r and tm[R_CD] == 0 and self.alive(foe) and self.distance(c, foe) <= R_RANGE:
            missing = u["max_hp"][foe] - u["hp"][foe]
            self._damage(c, foe, R_BASE + R_MISSING * missing, true_damage=True)
            tm[R_CD] = COOLDOWN[3]
        attacked = False
        if cmd.attack != NO_ATTACK and u["cd"][c] == 0 and tm[E_SPIN] == 0:
            target = self.auto_target(c) if cmd.attack == AUTO_TARGET else cmd.attack
            if target >= 0 and self._can_hit(c, target):
                self._damage(c, target, self.attack_damage(c))
                tm[Q_BUFF] = 0
                u["cd"][c] = u["period"][c]
                attacked = True
        if tm[E_SPIN] > 0:
            if tm[E_SPIN] % E_TICK == 0:
                self._spin(c)
            tm[E_SPIN] -= 1
        if cmd.move is not None:
            self.move_target[c] = (
                min(max(cmd.move[0], 0.0), LANE_LENGTH),
                min(max(cmd.move[1], -HALF_HEIGHT), HALF_HEIGHT),
            )
        if not attacked:
            self._walk(c)

    def _can_hit(self, c: int, target: int) -> bool:
        u = self.units
        return (
            self.alive(target)
            and u["team"][target] != c
            and u["kind"][target] != TOWER
            and self.distance(c, target) <= u["range"][c]
        )

    def _spin(self, c: int) -> None:
        u = self.units
        d = np.hypot(u["x"] - u["x"][c], u["y"] - u["y"][c])
        hit = (u["team"] != c) & (u["hp"] > 0) & (DAMAGE_TAKEN[u["kind"]] > 0) & (d <= E_RADIUS)
        for target in np.flatnonzero(hit).tolist():
            self._damage(c, target, E_DAMAGE)

    def _walk(self, c: int) -> None:
        u = self.units
        x, y = float(u["x"][c]), float(u["y"][c])
        dx, dy = self.move_target[c, 0] - x, self.move_target[c, 1] - y
        dist = (dx * dx + dy * dy) ** 0.5
        if dist == 0.0:
            return
        speed = u["speed"][c] * (Q_HASTE_FACTOR if self.timers[c, HASTE] > 0 else 1.0)
        step = min(speed, dist) / dist
        u["x"][c], u["y"][c] = x + dx * step, y + dy * step

    def _damage(self, c: int, target: int, amount: float, true_damage: bool = False) -> None:
        """Champion `c` damages `target`; last hits pay gold at once."""
        u = self.units
        kind = u["kind"][target]
        if kind == CHAMPION:
            if not true_damage and self.timers[target, W_BUFF] > 0:
                amount *= 1.0 - W_REDUCTION
            self.timers[c, AGGRO], self.timers[target, MARKED] = HARASS_AGGRO, ASSIST_STEPS
        u["hp"][target] -= amount
        if kind != CHAMPION and u["hp"][target] <= 0:
            self.score[c, GOLD_I] += GOLD[kind]
            self.score[c, LAST_HITS_I] += 1
            u["kind"][target] = EMPTY

    def _minions_and_towers(self) -> None:
        """Targeting, attacks and movement of every minion and tower, vectorized over the A
        units on the map (champions take part as targets only)."""
        idx = ((self.units["kind"] != EMPTY) & (self.units["hp"] > 0)).nonzero()[0]
        a = self.units[idx]  # (A,) copy of the rows on the map, written back at the end
        kind, team, x, y, hp = a["kind"], a["team"], a["x"], a["y"], a["hp"]
        dx = x - x[:, None]  # (A, A): row unit -> column unit
        dy = y - y[:, None]
        d = np.sqrt(dx * dx + dy * dy)
        penalty = TARGET_PENALTY[kind] + FOCUS * hp / a["max_hp"]
        champs = [c for c in (PLAYER, ENEMY) if self.units["hp"][c] > 0]  # the first rows
        for row, c in enumerate(champs):
            if self.timers[c, AGGRO] > 0:
                penalty[row] -= 300.0
        cost = d + penalty
        cost[(team == team[:, None]) | (d >= REACH[kind][:, None])] = np.inf
        rows = np.arange(len(idx))
        target = cost.argmin(axis=1)
        has = cost[rows, target] < np.inf
        in_range = has & (d[rows, target] <= a["range"])
        fire = (in_range & (a["cd"] == 0)).nonzero()[0]
        if fire.size:
            victims = target[fire]
            amount = a["ad"][fire]
            tower_shot = (kind[fire] == TOWER) & (kind[victims] != CHAMPION)
            amount[tower_shot] = (TOWER_MINION_SHARE * MAX_HP)[kind[victims[tower_shot]]]
            damage = np.bincount(victims, amount, len(idx)) * DAMAGE_TAKEN[kind]
            for row, c in enumerate(champs):
                if self.timers[c, W_BUFF] > 0:
                    damage[row] *= 1.0 - W_REDUCTION
            hp -= damage
            a["cd"][fire] = a["period"][fire]
        # Minions out of range walk toward their target (to attack range), else down the lane.
        minion = (kind == MELEE) | (kind == RANGED)
        gx = np.where(has, x[target], np.where(team == 0, LANE_LENGTH, 0.0)) - x
        gy = np.where(has, y[target], a["lane_y"]) - y
        norm = np.sqrt(gx * gx + gy * gy) + 1e-9
        stop = np.where(has, a["range"] - 0.1, 0.0)
        frac = np.clip(np.minimum(a["speed"], norm - stop) / norm, 0.0, None)
        frac *= minion & ~in_range
        # Minions closer than SPACING push each other apart.
        close = (d < SPACING) & minion & minion[:, None]
        push = np.where(close, (SPACING - d) / (4.0 * d + 1e-9), 0.0)
        x += gx * frac - (push * dx).sum(axis=1)
        y += gy * frac - (push * dy).sum(axis=1)
        kind[(hp <= 0) & minion] = EMPTY
        self.units[idx] = a

    def _resolve_champions(self) -> None:
        """Deaths (with kill credit), regeneration and fountain healing."""
        u = self.units
        for c in (PLAYER, ENEMY):
            if self.timers[c, RESPAWN] > 0:
                continue
            if u["hp"][c] <= 0:
                foe = 1 - c
                u["hp"][c] = 0.0
                self.timers[c, RESPAWN] = RESPAWN_STEPS
                self.timers[c, [E_SPIN, W_BUFF, Q_BUFF, HASTE, AGGRO]] = 0
                self.score[c, DEATHS_I] += 1
                if self.timers[c, MARKED] > 0:
                    self.score[foe, KILLS_I] += 1
                    self.score[foe, GOLD_I] += GOLD[CHAMPION]
                u["x"][c], u["y"][c] = CHAMP_SPAWN_X[c], 0.0
                self.move_target[c] = CHAMP_SPAWN_X[c], 0.0
                continue
            x = u["x"][c]
            in_base = x < BASE_DEPTH if c == PLAYER else x > LANE_LENGTH - BASE_DEPTH
            heal = REGEN + (FOUNTAIN_HEAL * u["max_hp"][c] if in_base else 0.0)
            u["hp"][c] = min(u["hp"][c] + heal, u["max_hp"][c])
