"""Model folders: `config.json` (kind + dataclass config) beside `model.safetensors`.

Every world-model network is built from one JSON-serialisable dataclass config, so a folder
holding the config and the weights is enough to rebuild it; loading checks that the weights
match the model the config describes and names what differs when they do not.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from world_models.checkpoint import (
    CheckpointError,
    load_weights,
    read_json,
    save_tensors,
    write_json,
)

# kind -> "module:ConfigClass:ModelClass"; models are built as ModelClass(ConfigClass(**config)).
# A config class may name `SAVED_DEFAULTS`: values for settings that configs saved before the
# setting existed lack, when they differ from the default a new model gets.
MODEL_KINDS: dict[str, str] = {
    "cnn-tokenizer": "world_models.tokenizer_cnn:CNNTokenizerConfig:CNNTokenizer",
    "transformer-tokenizer": (
        "world_models.tokenizer_transformer:TransformerTokenizerConfig:TransformerTokenizer"
    ),
    "dynamics": "world_models.dynamics:DynamicsConfig:Dynamics",
    "masked-video": "world_models.masked_video:MaskedVideoConfig:MaskedVideoModel",
}


def _classes(kind: str) -> tuple[type, type]:
    if kind not in MODEL_KINDS:
        raise CheckpointError(f"unknown model kind {kind!r}; known kinds: {sorted(MODEL_KINDS)}")
    module, config_cls, model_cls = MODEL_KINDS[kind].split(":")
    mod = importlib.import_module(module)
    return getattr(mod, config_cls), getattr(mod, model_cls)


def kind_of(model: nn.Module) -> str:
    """The registered kind of a model instance."""
    for kind, target in MODEL_KINDS.items():
        module, _, model_cls = target.split(":")
        if type(model).__module__ == module and type(model).__name__ == model_cls:
            return kind
    raise ValueError(f"{type(model).__name__} is not a registered world-model kind")


def model_spec(model: nn.Module) -> dict[str, Any]:
    """{"kind": ..., "config": {...}}: everything needed to rebuild `model` without weights."""
    return {"kind": kind_of(model), "config": dataclasses.asdict(model.config)}


def build_model(spec: dict[str, Any]) -> nn.Module:
    """A freshly initialised model from a `model_spec` dict, with a clear error if it is bad."""
    try:
        config_cls, model_cls = _classes(spec["kind"])
        config = {**getattr(config_cls, "SAVED_DEFAULTS", {}), **spec["config"]}
        return model_cls(config_cls(**config))
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"model config {spec!r} is malformed ({err})") from err


def save_model(model: nn.Module, folder: str | os.PathLike) -> Path:
    """Write `folder/config.json` and `folder/model.safetensors` (each atomically)."""
    folder = Path(folder)
    save_tensors(folder / "model.safetensors", model.state_dict())
    write_json(folder / "config.json", model_spec(model))
    return folder


def load_model(folder: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model saved by `save_model`, in eval mode on `device`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"model folder {folder} does not exist")
    model = build_model(read_json(folder / "config.json"))
    load_weights(model, folder / "model.safetensors")
    return model.to(device).eval()
