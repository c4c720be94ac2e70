"""Many dream rollouts stepped in one batched model call: Gymnasium `VectorEnv`, SB3 `VecEnv`.

`DreamVectorEnv` keeps one model state holding N rows (one per sub-env). Resetting some
sub-envs starts only those rows from new contexts and splices them into the batch (the
state's `replace_rows`); the others keep their KV cache. Each row has its own
`np.random.Generator` and `torch.Generator`, drawn exactly as `DreamEnv` draws them, so with
seeds [s, s + 1, ...] sub-env i matches a `DreamEnv` reset with seed s + i, given the same
actions and reset whenever it ends (up to float round-off of batched versus single matrix
products: frames may differ by one grey level).

Autoreset (Gymnasium 1.x, `metadata["autoreset_mode"]`): NEXT_STEP (default) resets a finished
sub-env on the next `step` call, ignoring its action there and returning its reset observation
with reward 0; SAME_STEP resets it within the step that ended it, returning the reset
observation and the last one in `infos["final_obs"]`. `DreamSB3VecEnv` serves a SAME_STEP
vector env to Stable-Baselines3 as its `VecEnv` (no subprocesses).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils.seeding import np_random
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices

from envs.actions import is_integral
from envs.dream import DreamCore


class DreamVectorEnv(VectorEnv):
    """N dream envs of one bundle, stepped together (arguments as `envs.dream.DreamEnv`)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        num_envs: int = 1,
        bundle: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        obs_mode: str = "pixels",
        termination: str = "threshold",
        continue_threshold: float = 0.5,
        horizon: int | None = None,
        num_steps: int | None = None,
        render_mode: str | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        compile: bool = False,
        trace: bool = True,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        mode = AutoresetMode(autoreset_mode)
        if mode == AutoresetMode.DISABLED:
            raise ValueError("autoreset_mode must be NEXT_STEP or SAME_STEP")
        self.core = DreamCore(
            bundle,
            device,
            obs_mode,
            termination,
            continue_threshold,
            horizon,
            num_steps,
            compile,
            trace,
        )
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.autoreset_mode = mode
        self.metadata = {
            **self.metadata,
            "render_fps": self.core.render_fps,
            "autoreset_mode": mode,
        }
        self.single_observation_space = self.core.observation_space
        self.single_action_space = self.core.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._rngs = [np_random()[0] for _ in range(num_envs)]
        self._generators = [self.core.new_generator() for _ in range(num_envs)]
        self._state: Any = None
        self._obs = np.zeros(
            (num_envs, *self.single_observation_space.shape), self.single_observation_space.dtype
        )
        self._latents: torch.Tensor | None = None
        self._frames: np.ndarray | None = None
        self._steps = np.zeros(num_envs, np.int64)
        self._autoreset = np.zeros(num_envs, bool)

    def _restart(self, rows: np.ndarray, chosen: np.ndarray | None = None) -> dict[str, Any]:
        """Start `rows` from fresh contexts (drawn, or the bundle contexts `chosen` (len(rows),))
        and splice them into the batch; -> their infos."""
        # drawn even when chosen, as DreamEnv.reset does, so the rows' generators advance alike
        indices = [self.core.draw_start(self._rngs[i], self._generators[i]) for i in rows]
        if chosen is not None:
            indices = [int(c) for c in chosen]
        generators = [self._generators[i] for i in rows]
        state, latents, frames = self.core.start(*self.core.context(indices), generators)
        if self._state is None or len(rows) == self.num_envs:
            self._state, self._latents = state, latents
            self._frames = frames if self.core.obs_mode == "pixels" else None
        else:
            self._state = self._state.replace_rows(torch.as_tensor(rows), state)
            self._latents[torch.as_tensor(rows, device=latents.device)] = latents
            if self._frames is not None:
                self._frames[rows] = frames
        self._obs[rows] = self.core.observe(latents, frames)
        self._steps[rows] = 0
        self._autoreset[rows] = False
        context = np.zeros(self.num_envs, np.int64)
        context[rows] = indices
        mask = np.zeros(self.num_envs, bool)
        mask[rows] = True
        return {"context": context, "_context": mask}

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all sub-envs, or those in `options["reset_mask"]` (bool array (N,)), from drawn
        bundle contexts or `options["context"]` (an index, or one per sub-env). Seeds: an int
        s seeds sub-env i with s + i; a list gives one seed (or None) per sub-env."""
        options = options or {}
        unknown = sorted(set(options) - {"reset_mask", "context"})
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {unknown}: a DreamVectorEnv takes 'reset_mask' and "
                "'context' (start from real frames with DreamEnv's options['frames'])"
            )
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} envs")
        mask = np.ones(self.num_envs, bool)
        if "reset_mask" in options:
            mask = np.array(options["reset_mask"])
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) "
                    "with at least one True"
                )
        if self._state is None:
            mask[:] = True
        chosen = None
        if "context" in options:
            count = len(self.core.contexts["obs"])
            chosen = np.asarray(options["context"])
            if (
                chosen.ndim > 1
                or chosen.size not in (1, self.num_envs)
                or not is_integral(chosen)
                or not ((chosen >= 0) & (chosen < count)).all()
            ):
                raise ValueError(
                    f"options['context'] must be an index in [0, {count}), or one per env, "
                    f"got {options['context']!r}"
                )
            chosen = np.broadcast_to(chosen.reshape(-1).astype(np.int64), (self.num_envs,))
        for i, s in enumerate(seeds):
            if mask[i] and s is not None:
                self._rngs[i] = np_random(s)[0]
        rows = np.flatnonzero(mask)
        info = self._restart(rows, None if chosen is None else chosen[rows])
        return self._obs.copy(), info

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        actions = self.core.check_actions(actions, (self.num_envs,))
        rewards = np.zeros(self.num_envs, np.float32)
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        cont = np.ones(self.num_envs, np.float32)
        restart = np.flatnonzero(self._autoreset)
        active = np.flatnonzero(~self._autoreset)
        infos: dict[str, Any] = {}
        if len(active):
            self._state, self._latents, reward, cont_all = self.core.step(
                self._state, actions, self._generators
            )
            pixels = self.core.obs_mode == "pixels"
            self._frames = self.core.decode(self._latents, self._state) if pixels else None
            self._steps[active] += 1
            rewards[active], cont[active] = reward[active], cont_all[active]
            rngs = [self._rngs[i] for i in active]
            terminated[active] = self.core.terminated(cont_all[active], rngs)
            truncated[active] = self._steps[active] >= self.core.horizon
            self._obs[active] = self.core.observe(self._latents, self._frames)[active]
            infos = {"continue_prob": cont, "_continue_prob": ~self._autoreset}
        done = terminated | truncated
        if self.autoreset_mode == AutoresetMode.SAME_STEP and done.any():
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(done):
                final_obs[i] = self._obs[i].copy()
            final_info = {"continue_prob": cont.copy(), "_continue_prob": done.copy()}
            infos.update(final_obs=final_obs, _final_obs=done.copy())
            infos.update(final_info=final_info, _final_info=done.copy())
            restart = np.flatnonzero(done)
        if len(restart):
            infos.update(self._restart(restart))
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._autoreset = done
        return self._obs.copy(), rewards, terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        """The current frame of every sub-env as RGB uint8 (H, W, 3) when
        render_mode="rgb_array"; None without a render mode or before the first reset."""
        if self.render_mode != "rgb_array" or self._latents is None:
            return None
        if self._frames is None:
            self._frames = self.core.decode(self._latents, self._state)
        return tuple(self.core.render_frames(self._frames))


class DreamSB3VecEnv(VecEnv):
    """A `DreamVectorEnv` as a Stable-Baselines3 `VecEnv` (SB3 auto-reset: on done, the returned
    obs is the reset obs and `info["terminal_observation"]` the last one). Takes the arguments
    of `DreamVectorEnv` (its autoreset mode is always SAME_STEP)."""

    def __init__(self, num_envs: int = 1, **kwargs: Any) -> None:
        self.venv = DreamVectorEnv(num_envs, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)
        super().__init__(
            num_envs, self.venv.single_observation_space, self.venv.single_action_space
        )
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        seeds = self._seeds if any(s is not None for s in self._seeds) else None
        given = [o for o in self._options if o]
        if given and (len(given) < self.num_envs or any(o != given[0] for o in given)):
            raise ValueError("dream sub-envs reset together: set_options needs one dict for all")
        obs, info = self.venv.reset(seed=seeds, options=given[0] if given else None)
        self.reset_infos = [{"context": int(c)} for c in info["context"]]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise RuntimeError("call step_async() before step_wait()")
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        self._actions = None
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        stepped = info.get("_continue_prob", np.zeros(self.num_envs, bool))
        for i in range(self.num_envs):
            if stepped[i]:
                infos[i]["continue_prob"] = float(info["continue_prob"][i])
            if terminated[i] or truncated[i]:
                infos[i]["terminal_observation"] = info["final_obs"][i]
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, rewards, terminated | truncated, infos

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.venv.render()
        return [None] * self.num_envs if frames is None else list(frames)

    def _check_indices(self, indices: VecEnvIndices) -> list[int]:
        rows = list(self._get_indices(indices))
        if any(not 0 <= i < self.num_envs for i in rows):
            raise IndexError(f"env indices {rows} out of range for {self.num_envs} envs")
        return rows

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of the shared dream env (all sub-envs share one model and settings)."""
        rows = self._check_indices(indices)
        return [getattr(self.venv, attr_name)] * len(rows)

    def _require_all(self, indices: VecEnvIndices, what: str) -> list[int]:
        """The rows `indices` names, which must be all of them: sub-envs share one model."""
        rows = self._check_indices(indices)
        if sorted(rows) != list(range(self.num_envs)):
            raise ValueError(f"dream sub-envs share one model: {what} applies to all envs only")
        return rows

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Sets a shared attribute; sub-envs cannot differ, so `indices` must cover all envs."""
        self._require_all(indices, "set_attr")
        setattr(self.venv, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Calls a method of the shared dream env once, for all sub-envs (they share one model
        and step together); its result is returned for each index."""
        rows = self._require_all(indices, "env_method")  # some rows: reset_mask options
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result] * len(rows)

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [False] * len(self._check_indices(indices))
