"""Fast fixed-length windows over a Minari dataset, for world-model and policy trainers.

Alignment (Dreamer's convention: one time index for everything). An episode of N transitions
has N + 1 steps; at step t:

- `obs[t]`: the t-th observation (`obs[0]` comes from `reset`);
- `action[t]`: the action that LED TO `obs[t]` (zeros at t = 0);
- `reward[t]`: the reward received on arriving at `obs[t]` (0 at t = 0);
- `is_first[t]`: True only at t = 0;
- `is_terminal[t]`: the env terminated on arriving at `obs[t]` (truncation is not termination);
- `labeled[t]`: whether `action[t]` is known: False at t = 0 and for unlabeled video steps
  (read from the dataset's per-step `infos["labeled"]` when present, else True for t >= 1).

So Minari's `actions[t]` / `rewards[t]` / `terminations[t]` become step t + 1 here.

Storage: a cache built once per dataset in `<dataset dir>/dreamgym_cache/` (rebuilt when missing
or stale, written to a temporary folder and renamed into place): the observations of every
step of every episode, back to back, in one uint8 `.npy` file that is memory-mapped (so a
window is one contiguous block and the dataset never has to fit in RAM), plus small arrays for
the rest (a Dict observation space gets one file per key; Discrete keys are int64). Sampling
draws from a precomputed index of valid window starts, so windows never straddle episodes.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from data_collection.datasets import (
    CorruptDatasetError,
    dataset_dir,
    dataset_env_id,
    load_dataset,
)
from world_models.atomic import replace_dir

CACHE_DIR = "dreamgym_cache"
CACHE_VERSION = 1
KEYS = ("obs", "action", "reward", "is_first", "is_terminal", "labeled")
IMAGE = ""  # the obs_layout field of a plain (non-Dict) observation


def obs_layout(space: gym.Space) -> dict[str, tuple[tuple[int, ...], type]]:
    """Field -> (shape, dtype) of one observation: {IMAGE: ...} for a uint8 Box (images), one
    field per key for a Dict of uint8 Boxes and Discretes (e.g. MiniGrid's symbolic grid)."""
    if isinstance(space, spaces.Box) and space.dtype == np.uint8:
        return {IMAGE: (tuple(space.shape), np.uint8)}
    if isinstance(space, spaces.Dict) and space.spaces:
        bad_keys = [k for k in space.spaces if not (isinstance(k, str) and k.isidentifier())]
        if bad_keys:
            raise ValueError(f"Dict observation keys must be identifiers, got {bad_keys}")
        layout = {k: _field_layout(sub) for k, sub in space.spaces.items()}
        if None not in layout.values():
            return layout
    raise ValueError(
        "SequenceView needs uint8 Box observations (images) or a Dict of uint8 Boxes and "
        f"Discretes, got {space}"
    )


def _field_layout(space: gym.Space) -> tuple[tuple[int, ...], type] | None:
    """(shape, dtype) of one Dict field, or None when the view cannot store it."""
    if isinstance(space, spaces.Box) and space.dtype == np.uint8:
        return tuple(space.shape), np.uint8
    if isinstance(space, spaces.Discrete):
        return (), np.int64
    return None


def _obs_file(field: str) -> str:
    return "obs.npy" if field == IMAGE else f"obs.{field}.npy"


def map_obs(obs: Any, fn: Callable[[np.ndarray], np.ndarray]) -> Any:
    """fn applied to the observation array, or to each field of a dict of them."""
    return {k: fn(v) for k, v in obs.items()} if isinstance(obs, dict) else fn(obs)


def action_layout(space: gym.Space) -> tuple[tuple[int, ...], type]:
    """(shape, dtype) of one action in the view: int64 for (Multi)Discrete, float32 for Box."""
    if isinstance(space, spaces.Discrete):
        return (), np.int64
    if isinstance(space, spaces.MultiDiscrete):
        return tuple(space.nvec.shape), np.int64
    if isinstance(space, spaces.Box):
        return tuple(space.shape), np.float32
    raise ValueError(f"SequenceView supports Discrete, MultiDiscrete and Box actions, got {space}")


class SequenceView:
    """Random windows and whole episodes of a dataset, aligned as in the module docstring.

    `episodes` restricts the view to those dataset episode indices (e.g. a train split from
    `split_episodes`); `episode(i)` then indexes into that list.
    """

    def __init__(
        self,
        dataset_id: str,
        data_dir: str | os.PathLike | None = None,
        episodes: Sequence[int] | None = None,
    ) -> None:
        dataset = load_dataset(dataset_id, data_dir)
        self.dataset_id = dataset_id
        self.observation_space = dataset.observation_space
        self.action_space = dataset.action_space
        self.env_id = dataset_env_id(dataset)
        layout = obs_layout(self.observation_space)
        action_layout(self.action_space)
        folder = dataset_dir(dataset_id, data_dir) / CACHE_DIR
        cache = ensure_cache(dataset, folder)
        try:
            fields, self._arrays, self._offsets = _read_cache(cache, layout)
        except (OSError, ValueError):  # a damaged cache (a truncated file, say): rebuild it
            cache = ensure_cache(dataset, folder, rebuild=True)
            fields, self._arrays, self._offsets = _read_cache(cache, layout)
        self._obs = fields.get(IMAGE, fields)  # one array, or a dict of them for Dict spaces
        total = len(self._offsets) - 1
        ids = np.arange(total) if episodes is None else np.asarray(episodes, dtype=np.int64)
        if ids.ndim != 1 or (ids.size and (ids.min() < 0 or ids.max() >= total)):
            raise ValueError(f"episodes must be indices in [0, {total}), got {list(episodes)}")
        self.episode_ids = ids
        self._starts: dict[int, np.ndarray] = {}

    def require_images(self, what: str) -> None:
        """Raise a clear error unless the observations are images (`what` needs pixels)."""
        if isinstance(self._obs, dict):
            env_id = self.env_id or ""
            pixels = env_id.replace("MiniGridSymbolic-", "MiniGridPixels-")
            hint = f" ({pixels})" if pixels != env_id else ""
            raise ValueError(
                f"{what} needs image observations, but {self.dataset_id!r} observes "
                f"{self.observation_space}; record a dataset of a pixel env instead{hint}"
            )

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ids)

    @property
    def num_steps(self) -> int:
        """Steps in the view's episodes (N + 1 per episode of N transitions)."""
        return int(np.sum(self._lengths()))

    def _lengths(self) -> np.ndarray:
        return self._offsets[self.episode_ids + 1] - self._offsets[self.episode_ids]

    def episode(self, i: int) -> dict[str, Any]:
        """The whole i-th episode of the view: arrays of length N + 1, keys as `sample`."""
        if not 0 <= i < self.num_episodes:
            raise IndexError(f"episode {i} out of range for a view of {self.num_episodes}")
        e = self.episode_ids[i]
        lo, hi = self._offsets[e], self._offsets[e + 1]
        out = {k: v[lo:hi].copy() for k, v in self._arrays.items()}
        out["obs"] = map_obs(self._obs, lambda a: np.array(a[lo:hi]))
        return out

    def valid_starts(self, seq_len: int) -> np.ndarray:
        """Cache rows at which a window of `seq_len` steps fits inside one episode."""
        if seq_len < 1:
            raise ValueError(f"seq_len must be at least 1, got {seq_len}")
        if seq_len not in self._starts:
            lo = self._offsets[self.episode_ids]
            counts = np.maximum(self._lengths() - seq_len + 1, 0)
            if counts.sum() == 0:
                raise ValueError(
                    f"no episode of {self.dataset_id!r} (in this view) has {seq_len} steps; the "
                    f"longest has {int(self._lengths().max(initial=0))}: ask for shorter windows "
                    "(--seq-len, or --context plus --horizon)"
                )
            # start rows of every episode's windows, concatenated
            first = np.repeat(lo - np.cumsum(counts) + counts, counts)
            self._starts[seq_len] = first + np.arange(counts.sum())
        return self._starts[seq_len]

    def sample(self, batch_size: int, seq_len: int, rng: np.random.Generator) -> dict[str, Any]:
        """`batch_size` windows of `seq_len` steps, uniform over all valid windows.

        Returns obs (B, T, *obs_shape) uint8 (for a Dict space, a dict of (B, T, ...) arrays),
        action (B, T, *act_shape) int64 or float32, reward (B, T) float32, is_first /
        is_terminal / labeled (B, T) bool.
        """
        starts = self.valid_starts(seq_len)
        rows = starts[rng.integers(0, len(starts), size=batch_size)]
        rows = rows[:, None] + np.arange(seq_len)  # (B, T)
        out = {k: v[rows] for k, v in self._arrays.items()}
        # each window: one contiguous block
        out["obs"] = map_obs(self._obs, lambda a: np.take(a, rows, axis=0))
        return out


def split_episodes(
    num_episodes: int, holdout_fraction: float, seed: int = 0
) -> tuple[list[int], list[int]]:
    """A seeded random split of episode indices into (train_ids, test_ids), each sorted.

    The test set gets round(num_episodes * holdout_fraction) episodes, at least one when the
    fraction is positive; the training set must keep at least one.
    """
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    n_test = round(num_episodes * holdout_fraction)
    if holdout_fraction > 0:
        n_test = max(n_test, 1)
    if num_episodes - n_test < 1:
        raise ValueError(
            f"cannot hold out {n_test} of {num_episodes} episodes and keep one to train on"
        )
    perm = np.random.default_rng(seed).permutation(num_episodes)
    return sorted(perm[n_test:].tolist()), sorted(perm[:n_test].tolist())


def _manifest(dataset) -> dict:
    hdf5 = Path(dataset.storage.data_path) / "main_data.hdf5"
    stat = hdf5.stat()
    return {
        "version": CACHE_VERSION,
        "dataset_id": dataset.id,
        "hdf5_size": stat.st_size,
        "hdf5_mtime_ns": stat.st_mtime_ns,
        "total_episodes": dataset.storage.total_episodes,
        "total_steps": dataset.storage.total_steps,
    }


def ensure_cache(dataset, folder: Path, rebuild: bool = False) -> Path:
    """The cache folder of `dataset`, (re)built first if it is missing, stale or `rebuild`."""
    manifest = _manifest(dataset)
    try:
        if not rebuild and json.loads((folder / "manifest.json").read_text()) == manifest:
            return folder
    except (OSError, ValueError):
        pass
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex}")
    try:
        tmp.mkdir(parents=True)
        _build_cache(dataset, tmp)
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        replace_dir(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _read_cache(
    cache: Path, layout: dict[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """(observation fields (S, ...) memory-mapped, other arrays (S, ...), episode offsets
    (E + 1,): the first row of each episode) from a cache folder."""
    # plain-ndarray views of the memory maps, so that windows cut from them are plain arrays
    fields = {k: np.load(cache / _obs_file(k), mmap_mode="r").view(np.ndarray) for k in layout}
    arrays = {k: np.load(cache / f"{k}.npy") for k in KEYS[1:]}
    offsets = np.load(cache / "offsets.npy")
    rows = {len(a) for a in (*fields.values(), *arrays.values())}
    consistent = offsets.ndim == 1 and len(offsets) > 0 and offsets.dtype.kind == "i"
    if not (consistent and offsets[0] == 0 and (np.diff(offsets) > 0).all()):
        raise ValueError(f"{cache}: damaged episode offsets")
    if rows != {int(offsets[-1])}:
        raise ValueError(f"{cache}: arrays of {sorted(rows)} rows for {offsets[-1]} steps")
    return fields, arrays, offsets


def _build_cache(dataset, folder: Path) -> None:
    """Write the aligned arrays of every episode of `dataset` to `folder`, one episode at a time."""
    storage = dataset.storage
    num_eps = storage.total_episodes
    total = storage.total_steps + num_eps
    act_shape, act_dtype = action_layout(dataset.action_space)
    obs = {
        k: np.lib.format.open_memmap(folder / _obs_file(k), "w+", dtype, (total, *shape))
        for k, (shape, dtype) in obs_layout(dataset.observation_space).items()
    }
    arrays = {
        "action": np.zeros((total, *act_shape), act_dtype),
        "reward": np.zeros(total, np.float32),
        "is_first": np.zeros(total, bool),
        "is_terminal": np.zeros(total, bool),
        "labeled": np.zeros(total, bool),
    }
    offsets = np.zeros(num_eps + 1, np.int64)
    row = 0
    try:
        for i, ep in enumerate(storage.get_episodes(range(num_eps))):
            n = len(ep["rewards"])
            fields = {k: ep["observations"] if k == IMAGE else ep["observations"][k] for k in obs}
            if any(len(v) != n + 1 for v in fields.values()) or row + n + 1 > total:
                raise CorruptDatasetError(
                    f"dataset {dataset.id!r}: episode {i} has inconsistent lengths; re-create it"
                )
            sl = slice(row + 1, row + n + 1)
            try:
                for k, array in obs.items():
                    array[row : row + n + 1] = fields[k]
                arrays["action"][sl] = np.asarray(ep["actions"]).reshape(n, *act_shape)
                arrays["reward"][sl] = ep["rewards"]
                arrays["is_first"][row] = True
                arrays["is_terminal"][sl] = ep["terminations"]
                labeled = (ep.get("infos") or {}).get("labeled")
                arrays["labeled"][sl] = True if labeled is None else np.asarray(labeled[1:], bool)
            except ValueError as err:
                raise CorruptDatasetError(
                    f"dataset {dataset.id!r}: episode {i} does not fit the dataset's spaces "
                    f"({err}); re-create it"
                ) from None
            row += n + 1
            offsets[i + 1] = row
    except (OSError, KeyError) as err:
        raise CorruptDatasetError(
            f"dataset {dataset.id!r} cannot be read ({err}); delete and re-create it"
        ) from None
    if row != total:
        raise CorruptDatasetError(
            f"dataset {dataset.id!r}: metadata says {total} steps, episodes hold {row}; re-create"
        )
    for array in obs.values():
        array.flush()
    del obs
    for k, v in arrays.items():
        np.save(folder / f"{k}.npy", v)
    np.save(folder / "offsets.npy", offsets)
