"""Any MiniGrid task as a fully observable pixel (or symbolic) env with strict action checks.

The wrapped MiniGrid env is created with `gym.make(task, **task_kwargs)` and stepped directly
(its own partial-view observation is discarded). Scripted experts read the true state through
`env.unwrapped.minigrid_env`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
import numpy as np
from gymnasium import spaces
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from minigrid.minigrid_env import MiniGridEnv

from envs.actions import is_integral

IMAGE_SIZE = 64
ACTION_NAMES = ("left", "right", "forward", "pickup", "drop", "toggle", "done")
OBS_MODES = ("pixels", "symbolic")


class MiniGridPixelsEnv(gym.Env):
    """A MiniGrid task seen from above, whole grid at once.

    obs_mode="pixels": RGB image `Box(0, 255, (H * t, W * t, 3), uint8)` for a grid of W x H cells
    with tile size `t = 64 // max(W, H)`, so 8x8 grids give 64x64 images (16x16 grids: t = 4).
    The agent's view cone is not highlighted: the agent sees the whole grid.

    obs_mode="symbolic": `Dict(grid=Box(0, 255, (W, H, 3), uint8), direction=Discrete(4))`,
    where `grid[x, y]` is MiniGrid's (object, color, state) encoding of cell (x, y) and the
    agent's cell holds (agent, red, direction), as in MiniGrid's `FullyObsWrapper`.

    Actions are MiniGrid's `Discrete(7)`: 0 left, 1 right, 2 forward, 3 pickup, 4 drop,
    5 toggle, 6 done. Rewards, termination and truncation (after `max_steps`) are MiniGrid's;
    `info["success"]` is True on the step that terminates with a positive reward (goal reached).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        task: str = "MiniGrid-DoorKey-8x8-v0",
        obs_mode: str = "pixels",
        render_mode: str | None = None,
        max_steps: int | None = None,
        **task_kwargs: Any,
    ) -> None:
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if max_steps is not None:
            if max_steps < 1:
                raise ValueError(f"max_steps must be a positive integer, got {max_steps}")
            task_kwargs["max_steps"] = max_steps
        self._inner = _make_minigrid(task, task_kwargs)
        self.task = task
        self.obs_mode = obs_mode
        self.render_mode = render_mode

        m = self.minigrid_env
        self.tile_size = IMAGE_SIZE // max(m.width, m.height)
        if self.tile_size < 1:
            raise ValueError(f"grid {m.width}x{m.height} is too large for a {IMAGE_SIZE}px image")
        self.action_space = spaces.Discrete(len(ACTION_NAMES))
        if obs_mode == "pixels":
            shape = (m.height * self.tile_size, m.width * self.tile_size, 3)
            self.observation_space = spaces.Box(0, 255, shape, np.uint8)
        else:
            self.observation_space = spaces.Dict(
                {
                    "grid": spaces.Box(0, 255, (m.width, m.height, 3), np.uint8),
                    "direction": spaces.Discrete(4),
                }
            )
        self._has_reset = False

    @property
    def minigrid_env(self) -> MiniGridEnv:
        """The wrapped MiniGrid env; `grid`, `agent_pos`, `agent_dir`, `carrying` are the state."""
        return self._inner.unwrapped

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self._inner.reset(seed=seed, options=options)
        self._has_reset = True
        return self._observation(), {"success": False}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        action = self._check_action(action)
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        _, reward, terminated, truncated, _ = self.minigrid_env.step(action)
        info = {"success": bool(terminated and reward > 0)}
        return self._observation(), float(reward), bool(terminated), bool(truncated), info

    def render(self) -> np.ndarray | None:
        """The RGB frame (same as a pixel observation) when render_mode="rgb_array", else None."""
        if self.render_mode != "rgb_array":
            return None
        return self._frame()

    def close(self) -> None:
        self._inner.close()

    def _check_action(self, action: Any) -> int:
        value = np.asarray(action)
        if value.shape != () or not is_integral(value) or not 0 <= int(value) < 7:
            names = ", ".join(f"{i} {name}" for i, name in enumerate(ACTION_NAMES))
            raise ValueError(
                f"action must be a single integer in [0, {len(ACTION_NAMES) - 1}] "
                f"({names}); got {action!r}"
            )
        return int(value)

    def _frame(self) -> np.ndarray:
        m = self.minigrid_env
        return m.grid.render(self.tile_size, m.agent_pos, m.agent_dir)  # no view-cone highlight

    def _observation(self) -> Any:
        if self.obs_mode == "pixels":
            return self._frame()
        m = self.minigrid_env
        grid = m.grid.encode()  # (W, H, 3)
        x, y = m.agent_pos
        grid[x, y] = (OBJECT_TO_IDX["agent"], COLOR_TO_IDX["red"], m.agent_dir)
        return {"grid": grid, "direction": int(m.agent_dir)}


def _make_minigrid(task: str, task_kwargs: dict[str, Any]) -> gym.Env:
    """`gym.make` a MiniGrid id, with clear errors for unknown ids and non-MiniGrid envs."""
    try:
        env = gym.make(task, disable_env_checker=True, **task_kwargs)
    except gym.error.Error as exc:
        raise ValueError(
            f"cannot make MiniGrid task {task!r} ({exc}); use a MiniGrid id such as "
            "'MiniGrid-DoorKey-8x8-v0' or 'MiniGrid-Empty-8x8-v0'"
        ) from exc
    if not isinstance(env.unwrapped, MiniGridEnv):
        env.close()
        raise ValueError(f"task {task!r} is not a MiniGrid env; use a 'MiniGrid-*' id")
    return env
