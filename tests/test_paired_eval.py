"""Tests for the paired bundle comparison's bundle specs (experiments.bench.paired_eval)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from tiny_models import TINY_DYNAMICS, TINY_TOKENIZER

from experiments.bench.paired_eval import parse_spec, with_overrides
from world_models.bundle import load_bundle
from world_models.random_bundle import random_bundle


def test_parse_spec() -> None:
    assert parse_spec("runs/x/bundle") == (parse_spec("runs/x/bundle:")[0], {})
    path, overrides = parse_spec('runs/x/bundle:guidance=1.5,sampler="renoise"')
    assert str(path) == "runs/x/bundle" and overrides == {"guidance": 1.5, "sampler": "renoise"}
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_spec("runs/x/bundle:guidance")


def test_with_overrides_changes_only_the_config(tmp_path) -> None:
    image, actions = spaces.Box(0, 255, (16, 16, 3), np.uint8), spaces.Discrete(3)
    bundle = random_bundle(tmp_path / "b", image, actions, TINY_TOKENIZER, TINY_DYNAMICS)
    changed = with_overrides(bundle, {"guidance": 2.0}, tmp_path / "changed")
    original, loaded = load_bundle(bundle), load_bundle(changed)
    assert loaded.models["dynamics"].config.guidance == 2.0
    assert original.models["dynamics"].config.guidance == 0.0
    weights = loaded.models["dynamics"].state_dict()
    for name, value in original.models["dynamics"].state_dict().items():
        assert np.array_equal(value.numpy(), weights[name].numpy())
    with pytest.raises(ValueError, match="unknown DynamicsConfig keys"):
        with_overrides(bundle, {"gudance": 2.0}, tmp_path / "bad")
