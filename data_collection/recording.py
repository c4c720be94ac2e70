"""Roll out a policy in a real env and record the episodes as a Minari dataset.

Episode `i` is reset with seed `seed + i` (env and policy alike), so a dataset is reproducible.
Per-step infos stored (N + 1 entries for N transitions, the first from `reset`): every info key
whose value is a number or bool at every step, plus `labeled` (False at the reset step, True
after: the action that led to each later observation is known). See `data_collection.datasets`
for where datasets live and how writing is made atomic.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from numbers import Number
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from data_collection.datasets import check_dataset_id, dataset_dir, write_dataset
from data_collection.policies import Policy, make_policy

if TYPE_CHECKING:
    from minari.data_collector import EpisodeBuffer

# Safety net for envs without a time limit: an episode this long is surely a missing truncation.
MAX_EPISODE_STEPS = 100_000


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """`gym.make(env_id, **env_kwargs)` with dreamgym's ids registered; clear error if unknown."""
    import envs  # noqa: F401  (registers dreamgym ids)

    try:
        return gym.make(env_id, **(env_kwargs or {}))
    except gym.error.Error as err:
        raise ValueError(
            f"cannot make env {env_id!r} ({err}); dreamgym ids: {', '.join(dreamgym_env_ids())}"
        ) from None


def dreamgym_env_ids() -> list[str]:
    """Every registered id whose entry point is in dreamgym's `envs` package."""
    import envs  # noqa: F401

    return sorted(
        k
        for k, s in gym.registry.items()
        if isinstance(s.entry_point, str) and s.entry_point.startswith("envs.")
    )


def stack(items: Sequence[Any], space: gym.Space) -> Any:
    """A list of per-step values of `space` as arrays (dicts and tuples of arrays, recursively)."""
    if isinstance(space, spaces.Dict):
        return {k: stack([x[k] for x in items], s) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(stack([x[i] for x in items], s) for i, s in enumerate(space.spaces))
    return np.asarray(items, dtype=space.dtype)


def numeric_infos(infos: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The info keys whose value is a number or bool at every step, as arrays, plus `labeled`."""
    keys = [k for k, v in infos[0].items() if isinstance(v, (Number, np.number, bool, np.bool_))]
    out = {
        k: np.asarray([info[k] for info in infos])
        for k in keys
        if all(isinstance(info.get(k), (Number, np.number, bool, np.bool_)) for info in infos)
    }
    out["labeled"] = np.arange(len(infos)) > 0
    return out


def record_episode(env: gym.Env, policy: Policy, seed: int) -> EpisodeBuffer:
    """One episode from `env.reset(seed=seed)` to termination or truncation."""
    from minari.data_collector import EpisodeBuffer

    obs, info = env.reset(seed=seed)
    policy.reset(env, seed)
    observations, infos = [obs], [info]
    actions, rewards, terminations, truncations = [], [], [], []
    done = False
    while not done:
        if len(actions) >= MAX_EPISODE_STEPS:
            raise ValueError(
                f"episode exceeded {MAX_EPISODE_STEPS} steps; does the env truncate episodes?"
            )
        action = policy.act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        infos.append(info)
        actions.append(action)
        rewards.append(float(reward))
        terminations.append(bool(terminated))
        truncations.append(bool(truncated))
        done = terminated or truncated
    return EpisodeBuffer(
        seed=seed,
        observations=stack(observations, env.observation_space),
        actions=stack(actions, env.action_space),
        rewards=np.asarray(rewards, dtype=np.float64),
        terminations=np.asarray(terminations, dtype=bool),
        truncations=np.asarray(truncations, dtype=bool),
        infos=numeric_infos(infos),
    )


def collect(
    env_id: str,
    policy_kind: str,
    episodes: int,
    dataset_id: str,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    force: bool = False,
    epsilon: float = 0.2,
    progress: bool = True,
    env_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Record `episodes` episodes of `policy_kind` ('expert', 'random', 'noisy') in `env_id`.

    Returns the dataset folder. Refuses to overwrite an existing dataset unless `force`.
    """
    from tqdm import tqdm

    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    check_dataset_id(dataset_id)
    folder = dataset_dir(dataset_id, data_dir)
    if folder.exists() and not force:
        raise FileExistsError(
            f"dataset {dataset_id!r} already exists at {folder}; pass --force to replace it"
        )
    policy = make_policy(policy_kind, env_id, epsilon)
    env = make_env(env_id, env_kwargs)

    def buffers() -> Iterator[EpisodeBuffer]:
        bar = tqdm(range(episodes), desc=f"collect {dataset_id}", unit="ep", disable=not progress)
        total_return = 0.0
        for i in bar:
            buffer = record_episode(env, policy, seed + i)
            total_return += float(np.sum(buffer.rewards))
            bar.set_postfix(mean_return=f"{total_return / (i + 1):.3f}", refresh=False)
            yield buffer

    try:
        return write_dataset(
            dataset_id,
            buffers(),
            observation_space=env.observation_space,
            action_space=env.action_space,
            env_spec=env.spec,
            data_dir=data_dir,
            force=force,
            algorithm_name=f"dreamgym-{policy_kind}",
            description=f"{episodes} episodes of the {policy_kind} policy in {env_id}, seeds "
            f"{seed}..{seed + episodes - 1}",
        )
    finally:
        env.close()
