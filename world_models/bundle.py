"""World-model bundles: everything a dream env needs, in one folder.

```
bundle/
  config.json            format, env id, spaces, model specs, sampling settings, horizon
  tokenizer.safetensors  weights of the tokenizer
  dynamics.safetensors   weights of the dynamics model
  contexts.safetensors   real start contexts: obs (M, T0, H, W, C) uint8, action (M, T0, ...),
                         labeled (M, T0) bool, each the first T0 steps of a real episode
```
Loading checks the format, that every file is present and readable, that the weights match
the models the config describes, and that the contexts fit the observation space; every
error names the file and says how to get a good bundle.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from world_models.action_encoder import space_to_spec, spec_to_space
from world_models.atomic import replace_dir
from world_models.checkpoint import (
    CheckpointError,
    load_tensors,
    load_weights,
    read_json,
    save_tensors,
    write_json,
)
from world_models.model_io import build_model, model_spec

FORMAT = "dreamgym-bundle"
VERSION = 1
HOW_TO_FIX = (
    "train one with `dreamgym train-dynamics` (it writes a bundle) or pack one with "
    "`dreamgym export-bundle`"
)


class BundleError(CheckpointError):
    """A bundle that is missing, corrupt or inconsistent."""


@dataclass
class Bundle:
    """A loaded bundle: its config, models (eval mode) and start contexts."""

    path: Path
    config: dict[str, Any]
    models: dict[str, nn.Module]
    contexts: dict[str, torch.Tensor]

    @property
    def observation_space(self) -> gym.Space:
        return spec_to_space(self.config["observation_space"])

    @property
    def action_space(self) -> gym.Space:
        return spec_to_space(self.config["action_space"])

    @property
    def sampling(self) -> dict[str, Any]:
        """The bundle's sampling settings (e.g. num_steps, copy_threshold)."""
        sampling = self.config.get("sampling", {})
        if not isinstance(sampling, dict):
            raise BundleError(
                f"{self.path / 'config.json'}: sampling must be an object of settings, got "
                f"{sampling!r}; {HOW_TO_FIX}"
            )
        return sampling

    def holdout(self, dataset_id: str) -> float | None:
        """The share of `dataset_id`'s episodes the dynamics held out when it trained on them
        (None: it trained on another dataset, or the bundle does not say)."""
        trained = self.config.get("training", {})
        return trained.get("holdout") if trained.get("dataset_id") == dataset_id else None

    def check_spaces(
        self, source: str, observation_space: gym.Space, action_space: gym.Space
    ) -> None:
        """Raise a clear error unless `source` (a dataset or an env) has this bundle's spaces."""
        for what, mine, theirs in (
            ("observes", self.observation_space, observation_space),
            ("acts in", self.action_space, action_space),
        ):
            if mine != theirs:
                raise BundleError(
                    f"{source} {what} {theirs}, but the bundle {self.path} (a model of "
                    f"{self.config.get('env_id')}) {what} {mine}: use a bundle of that env"
                )


def save_bundle(
    path: str | os.PathLike,
    env_id: str,
    observation_space: gym.Space,
    action_space: gym.Space,
    models: dict[str, nn.Module],
    contexts: dict[str, np.ndarray],
    sampling: dict[str, Any] | None = None,
    horizon: int = 200,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write a bundle folder, complete or not at all (built beside it, then renamed).
    `training`: what the dynamics learned from ({"dataset_id", "holdout"}), so evaluations
    hold out the same episodes."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, model in models.items():
        save_tensors(tmp / f"{name}.safetensors", model.state_dict())
    save_tensors(
        tmp / "contexts.safetensors",
        {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in contexts.items()},
    )
    write_json(
        tmp / "config.json",
        {
            "format": FORMAT,
            "version": VERSION,
            "env_id": env_id,
            "observation_space": space_to_spec(observation_space),
            "action_space": space_to_spec(action_space),
            "models": {name: model_spec(model) for name, model in models.items()},
            "sampling": sampling or {},
            "horizon": horizon,
            **({"training": training} if training else {}),
        },
    )
    replace_dir(tmp, path)
    return path


def _check_contexts(path: Path, contexts: dict[str, torch.Tensor], obs_space: gym.Space) -> None:
    needed = {"obs", "action", "labeled"}
    if not needed <= set(contexts):
        raise BundleError(f"{path} lacks {sorted(needed - set(contexts))}; {HOW_TO_FIX}")
    obs = contexts["obs"]
    if obs.dtype != torch.uint8 or tuple(obs.shape[2:]) != tuple(obs_space.shape):
        raise BundleError(
            f"{path}: start frames are {tuple(obs.shape)} {obs.dtype}, but the bundle's "
            f"observation space is {obs_space}; {HOW_TO_FIX}"
        )
    if obs.shape[0] == 0 or obs.shape[1] == 0:
        raise BundleError(f"{path} holds no start context; {HOW_TO_FIX}")
    for name in ("action", "labeled"):
        shape = tuple(contexts[name].shape)
        if shape[:2] != tuple(obs.shape[:2]) or (name == "labeled" and len(shape) != 2):
            raise BundleError(
                f"{path}: '{name}' is {shape} but the start frames are {tuple(obs.shape)}: "
                f"each of the {obs.shape[0]} contexts needs one per frame; {HOW_TO_FIX}"
            )


def load_bundle(path: str | os.PathLike, device: str | torch.device = "cpu") -> Bundle:
    """Load and validate a bundle folder; models are returned in eval mode on `device`."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"world-model bundle {path} not found; {HOW_TO_FIX}")
    config = read_json(path / "config.json")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise BundleError(f"{path / 'config.json'} is not a dreamgym bundle config; {HOW_TO_FIX}")
    if config.get("version") != VERSION:
        raise BundleError(
            f"{path} is bundle version {config.get('version')}, this dreamgym reads {VERSION}"
        )
    try:
        obs_space = spec_to_space(config["observation_space"])
        spec_to_space(config["action_space"])
        specs = config["models"]
        if not isinstance(specs, dict) or not specs:
            raise ValueError(f"models must be an object of name: model spec, got {specs!r}")
        if not isinstance(config["horizon"], int) or config["horizon"] < 1:
            raise ValueError(f"horizon must be an integer >= 1, got {config['horizon']!r}")
    except (KeyError, TypeError, ValueError) as err:
        raise BundleError(f"{path / 'config.json'} is malformed ({err}); {HOW_TO_FIX}") from err
    models = {}
    for name, spec in specs.items():
        model = build_model(spec)
        load_weights(model, path / f"{name}.safetensors")
        models[name] = model.to(device).eval()
    contexts = load_tensors(path / "contexts.safetensors")
    _check_contexts(path / "contexts.safetensors", contexts, obs_space)
    return Bundle(path=path, config=config, models=models, contexts=contexts)


def start_contexts(
    view: Any, count: int, length: int, seed: int = 0, anywhere: bool = False
) -> dict[str, np.ndarray]:
    """`length`-step windows of a SequenceView as bundle contexts: the first steps of up to
    `count` episodes (the real env's start states), or with `anywhere` `count` windows drawn
    uniformly from every position of every episode (the real states Dreamer's imagination
    starts from; for envs whose dream horizon covers only the start of a real episode)."""
    rng = np.random.default_rng(seed)
    keys = ("obs", "action", "labeled")
    if anywhere:
        batch = view.sample(count, length, rng)  # raises a clear error when no episode fits
        return {k: batch[k] for k in keys}
    ids = [i for i in range(view.num_episodes) if len(view.episode(i)["obs"]) >= length]
    if not ids:
        raise ValueError(f"no episode has {length} steps to serve as start context")
    chosen = rng.choice(ids, size=min(count, len(ids)), replace=False)
    episodes = [view.episode(int(i)) for i in sorted(chosen)]
    return {k: np.stack([ep[k][:length] for ep in episodes]) for k in keys}
