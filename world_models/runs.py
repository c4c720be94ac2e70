"""What every training command shares: run folders, config overrides, data splits."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from world_models.checkpoint import latest_checkpoint, read_json, write_json


def parse_overrides(items: list[str] | None, flag: str = "--set") -> dict[str, Any]:
    """`["depth=4", "lr=1e-3", "name=x"]` -> {"depth": 4, "lr": 0.001, "name": "x"} (JSON values,
    falling back to plain strings); errors name the command-line `flag`."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# JSON values a setting declared with this (plain) type accepts
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "int": (int,),
    "float": (int, float),
    "str": (str,),
}


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """A copy of dataclass `config` with `overrides`; unknown keys and values of the wrong
    type (for settings declared bool, int, float or str) are a clear error."""
    types = {f.name: str(f.type) for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - set(types))
    if unknown:
        raise ValueError(
            f"unknown setting(s) {unknown} for {type(config).__name__}; known: {sorted(types)}"
        )
    for key, value in overrides.items():
        accepts = _ACCEPTS.get(types[key])
        wrong_bool = isinstance(value, bool) and types[key] != "bool"
        if accepts and (wrong_bool or not isinstance(value, accepts)):
            raise ValueError(f"setting {key} must be of type {types[key]}, got {value!r}")
    return dataclasses.replace(config, **overrides)


def new_run_dir(root: str | os.PathLike, experiment: str) -> Path:
    """`root/<experiment>/<YYYYmmdd-HHMMSS>/` (created)."""
    path = Path(root) / experiment / time.strftime("%Y%m%d-%H%M%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


def prepare_run(
    run_dir: str | os.PathLike,
    settings: dict[str, Any],
    resume: bool,
    must_match: tuple[str, ...] = (),
    steps_key: tuple[str, ...] = ("train", "steps"),
) -> dict:
    """Record a run's settings in `run.json`, or on `--resume` return the recorded ones.

    Resuming continues the run as recorded: the `must_match` settings must equal this call's,
    a larger step count (at `steps_key`, a path into the settings) extends the run, and every
    other recorded setting is kept; those this call gives differently are named in a note.
    A run folder that already holds checkpoints is never silently restarted: without `resume`
    that is an error, so a finished or killed run is not overwritten by accident.
    """
    run_dir = Path(run_dir)
    recorded = run_dir / "run.json"
    if resume:
        if not recorded.is_file():
            raise FileNotFoundError(f"--resume: {recorded} not found; is {run_dir} a run folder?")
        before = read_json(recorded)
        for key in must_match:
            if before.get(key) != settings[key]:
                raise ValueError(
                    f"--resume: {run_dir} was run with {key}={before.get(key)!r}, not "
                    f"{settings[key]!r}; pass the same option, or a new --run-dir"
                )
        steps, recorded_steps = _lookup(settings, steps_key), _lookup(before, steps_key)
        if isinstance(steps, int) and isinstance(recorded_steps, int) and steps > recorded_steps:
            _lookup(before, steps_key[:-1])[steps_key[-1]] = steps
            write_json(recorded, before)
        then = _flatten(before)
        ignored = [
            f"{key}={value!r} (run: {then.get(key)!r})"
            for key, value in _flatten(settings).items()
            if then.get(key) != value and key != ".".join(steps_key)
        ]
        if ignored:
            print(
                f"--resume: {run_dir} continues with its recorded settings (run.json); "
                f"not used: {', '.join(ignored)}",
                file=sys.stderr,
            )
        return before
    if has_checkpoints(run_dir):
        raise FileExistsError(
            f"{run_dir} already holds checkpoints: pass --resume to continue it, "
            "or choose another --run-dir"
        )
    write_json(recorded, settings)
    return settings


def has_checkpoints(run_dir: str | os.PathLike) -> bool:
    """Whether `run_dir/checkpoints/` holds any trainer's checkpoints (not just the hidden
    temporary folder of one that was being written when the run died)."""
    folder = Path(run_dir) / "checkpoints"
    return folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir())


def _lookup(settings: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(settings, dict):
            return None
        settings = settings.get(key)
    return settings


def _flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1}} -> {"train.lr": 1}."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def model_from_run(run_dir: str | os.PathLike, name: str) -> Any:
    """The model `name` ("tokenizer", "dynamics", ...) of a training run, with the weights of
    its latest checkpoint: lets a run that was stopped early be evaluated or exported."""
    from world_models.checkpoint import CheckpointError, load_tensors
    from world_models.model_io import build_model

    run_dir = Path(run_dir)
    folder = latest_checkpoint(run_dir)
    if folder is None:
        raise CheckpointError(f"{run_dir} has no checkpoint yet")
    model = build_model(read_json(run_dir / "run.json")["model"])
    prefix = f"{name}."
    tensors = {
        k[len(prefix) :]: v
        for k, v in load_tensors(folder / "model.safetensors").items()
        if k.startswith(prefix)
    }
    missing = sorted(set(model.state_dict()) - set(tensors))
    if missing:
        raise CheckpointError(f"{folder} holds no complete {name!r} model (missing {missing[:3]})")
    model.load_state_dict(tensors)
    return model.eval()


def load_trained(path: str | os.PathLike, name: str, device: str = "cpu") -> Any:
    """A trained model on `device` from a model folder, a bundle folder (its model `name`), or
    a run folder: its exported `name/` when the run finished, else its latest checkpoint."""
    from world_models.bundle import FORMAT, load_bundle
    from world_models.checkpoint import CheckpointError
    from world_models.model_io import load_model

    path = Path(path)
    if (path / "config.json").is_file():
        config = read_json(path / "config.json")
        if not isinstance(config, dict):
            raise CheckpointError(f"{path / 'config.json'} is not a model or bundle config")
        if config.get("format") != FORMAT:
            return load_model(path, device)
        models = load_bundle(path, device).models
        if name not in models:
            raise CheckpointError(
                f"bundle {path} holds no {name!r} model (it has {sorted(models)})"
            )
        return models[name]
    if (path / name / "config.json").is_file():
        return load_model(path / name, device)
    if (path / "run.json").is_file():
        return model_from_run(path, name).to(device)
    raise CheckpointError(
        f"{path} is neither a model, bundle nor training run folder (no config.json or run.json)"
    )


def init_source(path: str | os.PathLike, name: str, kind: str) -> Any:
    """The trained model `name` at `path` that an `--init-from` run starts from; it must be a
    model of `kind` (e.g. "dynamics")."""
    from world_models.model_io import kind_of

    source = load_trained(path, name)
    if kind_of(source) != kind:
        raise ValueError(f"--init-from {path}: holds a {kind_of(source)!r} model, not a {kind!r}")
    return source


def load_initial_weights(
    model: Any, path: str | os.PathLike, name: str, source: Any | None = None
) -> None:
    """Start `model` from the weights of the trained model `name` at `path` (`--init-from`;
    `source`: that model, when the caller has loaded it already). Settings that hold no
    weights may differ (e.g. loss scales); they are named in a warning."""
    import warnings

    from world_models.model_io import kind_of, model_spec

    source = source or init_source(path, name, kind_of(model))
    ours, theirs = model_spec(model)["config"], model_spec(source)["config"]
    changed = sorted(k for k in ours if ours[k] != theirs.get(k))
    if changed:
        warnings.warn(f"--init-from {path}: this run's settings differ in {changed}", stacklevel=2)
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as err:
        first = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), "")
        raise ValueError(
            f"--init-from {path}: its {name} architecture differs from this run's model; keep "
            f"the architecture settings (dim, depth, ...) the same ({first} ...)"
        ) from err
