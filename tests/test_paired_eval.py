"""Tests for the paired bundle comparison (experiments.bench.paired_eval)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
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


def test_per_window_scores_the_whole_horizon_and_its_last_frames(monkeypatch) -> None:
    from experiments.bench import paired_eval
    from world_models import evaluate

    real = torch.zeros(2, 6, 4, 4, 3)
    error = torch.tensor([0.01, 0.02, 0.04, 0.08, 0.16, 0.32])  # grows along the horizon
    dream = real + error.view(1, 6, 1, 1, 1)
    fake = {
        "_frames": {"real": real, "dream": dream, "hold": real},
        "dream_k4": {"changed_psnr": [1.0] * 6, "reward_accuracy": 0.5},
        "other_actions": {"changed_psnr": [0.5] * 6},
    }
    monkeypatch.setattr(evaluate, "evaluate_world_model", lambda *a, **k: fake)
    scores = paired_eval.per_window(Path("unused"), "unused", windows=2, seed=0)
    per_frame = -20 * torch.log10(error)  # PSNR of a constant error, peak 1
    assert torch.allclose(scores["whole"], per_frame.mean().expand(2))
    assert torch.allclose(scores["late"], per_frame[-paired_eval.LATE_FRAMES :].mean().expand(2))
    assert scores["late"][0] < scores["whole"][0]
    assert scores["action_gap"] == pytest.approx(0.5) and scores["reward_accuracy"] == 0.5
