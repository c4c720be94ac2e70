"""Saving and loading weights: safetensors plus a JSON config, always written atomically.

One helper for everything that touches weights on disk: model folders (bundles and exported
models) and training checkpoints (model, optimizer, step and RNG states for an exact resume).
A training run keeps `checkpoints/step-XXXXXXXX/` folders and a `checkpoints/latest` pointer
that is replaced only after the folder it names is complete, so a run killed at any moment
resumes from its last complete checkpoint. The atomic file and folder writes themselves live in
`world_models/atomic.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from world_models.atomic import aside, atomic_write_text, publish, replace_dir, tmp_beside


class CheckpointError(ValueError):
    """A weights file or config that is missing, corrupt or does not match the model."""


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Atomically write `data` as indented JSON."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, with a clear error if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not valid JSON ({err}); the file is corrupt") from err


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    """Atomically write a safetensors file (tensors are made contiguous and moved to CPU)."""
    tmp = tmp_beside(Path(path))
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    publish(tmp, path)


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file, with a clear error if it is missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from err


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or similar) wrapper."""
    return getattr(model, "module", model)


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load a safetensors file into `model`, naming every missing, extra or mis-shaped tensor."""
    tensors = load_tensors(path)
    own = unwrap(model).state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    shapes = [
        f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(tensors))
        if tensors[k].shape != own[k].shape
    ]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected {extra[:5]}{' ...' if len(extra) > 5 else ''}")
        if shapes:
            parts.append(f"shape mismatch {shapes[:5]}")
        raise CheckpointError(
            f"{path} does not match the model built from its config: {'; '.join(parts)}"
        )
    unwrap(model).load_state_dict(tensors)


def _optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able metadata."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, slots in state["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{name}"] = value
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write `checkpoints/step-<step>/` completely, then point `checkpoints/latest` at it.

    `state` is JSON-able training state (config, RNG states, counters). Older checkpoints
    beyond the newest `keep` are removed (never the one just written), and so are folders a
    killed re-save left aside (`.step-*.old-*`): the pointer no longer needs them.
    """
    root = Path(run_dir) / "checkpoints"
    final = root / f"step-{step:08d}"
    tmp = tmp_beside(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_tensors(tmp / "model.safetensors", unwrap(model).state_dict())
    opt_tensors, opt_meta = _optimizer_to_flat(optimizer)
    save_tensors(tmp / "optimizer.safetensors", opt_tensors)
    write_json(tmp / "state.json", {"step": step, "optimizer": opt_meta, **state})
    replace_dir(tmp, final)
    atomic_write_text(root / "latest", final.name + "\n")
    stale = [p for p in sorted(root.glob("step-*"))[:-keep] if p != final]
    for old in stale + list(root.glob(aside(root / "step-*").name)):
        shutil.rmtree(old, ignore_errors=True)
    return final


def torch_rng_state(device: torch.device) -> dict[str, Any]:
    """torch's random streams as JSON-able lists: the CPU one, and the CUDA one of `device`
    when it is a CUDA device (where tensors made on it draw from)."""
    state = {"torch_rng": torch.get_rng_state().tolist()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device).tolist()
    return state


def set_torch_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore the streams `torch_rng_state` saved (the CUDA one only on a CUDA device)."""
    torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    if "cuda_rng" in state and device.type == "cuda":
        torch.cuda.set_rng_state(torch.tensor(state["cuda_rng"], dtype=torch.uint8), device)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The folder `checkpoints/latest` names, or None when the run has no checkpoint yet.

    Every `step-*` folder is complete (each is renamed into place whole). When a re-save of
    the step the pointer names was killed between its renames, the old folder is read where it
    was set aside (nothing is renamed here: readers never race a writer); when the pointer is
    missing or names a folder that is gone, the newest complete one is used instead.
    """
    root = Path(run_dir) / "checkpoints"
    pointer = root / "latest"
    if pointer.is_file():
        folder = root / pointer.read_text().strip()
        if folder.is_dir():
            return folder
        set_aside = [p for p in root.glob(aside(folder).name) if _complete(p)]
        if set_aside:
            return max(set_aside, key=lambda p: p.stat().st_mtime)
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    if not steps:
        return None
    why = "names a missing folder" if pointer.is_file() else "is missing"
    print(f"{pointer} {why}; resuming from {steps[-1].name}", file=sys.stderr)
    return steps[-1]


def _complete(folder: Path) -> bool:
    """Whether a checkpoint folder holds all of its files (not one half removed)."""
    names = ("model.safetensors", "optimizer.safetensors", "state.json")
    return all((folder / name).is_file() for name in names)


def load_checkpoint(
    folder: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore model and optimizer from a checkpoint folder; returns its JSON state."""
    folder = Path(folder)
    state = read_json(folder / "state.json")
    load_weights(model, folder / "model.safetensors")
    opt_tensors = load_tensors(folder / "optimizer.safetensors")
    optimizer.load_state_dict(_optimizer_from_flat(opt_tensors, state.pop("optimizer")))
    return state
