"""Shortest-path expert for MiniGrid: fetch the key, open the door, walk to the goal.

Plans from the true state every step (breadth-first search over (x, y, direction) with
turn-left / turn-right / forward), so it recovers from any random action NoisyPolicy injects.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import gymnasium as gym
from minigrid.core.constants import DIR_TO_VEC
from minigrid.core.world_object import WorldObj
from minigrid.minigrid_env import MiniGridEnv

from data_collection.policies import Policy

LEFT, RIGHT, FORWARD, PICKUP, TOGGLE, DONE = 0, 1, 2, 3, 5, 6

State = tuple[int, int, int]  # (x, y, direction)


class MiniGridPlanner(Policy):
    """Expert for `envs.minigrid.MiniGridPixelsEnv` (reads `env.unwrapped.minigrid_env`)."""

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        super().reset(env, seed)
        minigrid_env = getattr(env.unwrapped, "minigrid_env", None)
        if not isinstance(minigrid_env, MiniGridEnv):
            raise ValueError(
                f"MiniGridPlanner needs an envs.minigrid.MiniGridPixelsEnv (e.g. "
                f"'MiniGridPixels-DoorKey-8x8-v0'), got {env.unwrapped!r}"
            )
        self.minigrid_env = minigrid_env

    def act(self, obs: Any) -> int:
        return plan_action(self.minigrid_env)


def plan_action(m: MiniGridEnv) -> int:
    """First action of a shortest plan from the current state.

    In order of preference: walk onto the goal; open a closed door (unlocked, or locked with
    its key in hand); pick up the key of a locked door; pick up any other object that blocks
    the way. Returns `done` (a no-op) when nothing is reachable.
    """
    cells = [(x, y, m.grid.get(x, y)) for x in range(m.width) for y in range(m.height)]
    carrying = m.carrying

    def positions(keep: Callable[[WorldObj], bool]) -> list[tuple[int, int]]:
        return [(x, y) for x, y, obj in cells if obj is not None and keep(obj)]

    def can_open(door: WorldObj) -> bool:
        if not door.is_locked:
            return True
        return carrying is not None and carrying.type == "key" and carrying.color == door.color

    locked_colors = {obj.color for _, _, obj in cells if obj is not None and _is_locked(obj)}
    targets = [(positions(lambda o: o.type == "goal"), FORWARD)]
    targets.append(
        (positions(lambda o: o.type == "door" and not o.is_open and can_open(o)), TOGGLE)
    )
    if carrying is None:
        targets.append((positions(lambda o: o.type == "key" and o.color in locked_colors), PICKUP))
        targets.append((positions(lambda o: o.can_pickup()), PICKUP))
    for cells_to_face, final_action in targets:
        action = first_action(m, cells_to_face, final_action)
        if action is not None:
            return action
    return DONE


def first_action(
    m: MiniGridEnv, cells_to_face: Iterable[tuple[int, int]], final_action: int
) -> int | None:
    """First action of a shortest path to facing one of `cells_to_face`, then `final_action`.

    None when no such cell can be reached. Walkable cells: empty or overlappable, not lava.
    """
    wanted = set(cells_to_face)
    if not wanted:
        return None
    start: State = (int(m.agent_pos[0]), int(m.agent_pos[1]), int(m.agent_dir))
    first: dict[State, int | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        x, y, d = state
        dx, dy = DIR_TO_VEC[d]
        if (x + dx, y + dy) in wanted:
            action = first[state]
            return final_action if action is None else action
        for action, nxt in _successors(m, state):
            if nxt not in first:
                first[nxt] = first[state] if first[state] is not None else action
                queue.append(nxt)
    return None


def _successors(m: MiniGridEnv, state: State) -> list[tuple[int, State]]:
    x, y, d = state
    moves = [(LEFT, (x, y, (d - 1) % 4)), (RIGHT, (x, y, (d + 1) % 4))]
    dx, dy = DIR_TO_VEC[d]
    fx, fy = x + dx, y + dy
    if 0 <= fx < m.width and 0 <= fy < m.height and _walkable(m.grid.get(fx, fy)):
        moves.insert(0, (FORWARD, (fx, fy, d)))
    return moves


def _walkable(obj: WorldObj | None) -> bool:
    return obj is None or (obj.can_overlap() and obj.type != "lava")


def _is_locked(obj: WorldObj) -> bool:
    return obj.type == "door" and obj.is_locked
