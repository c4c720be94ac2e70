"""Suite-wide settings: one torch thread (small ops run faster and results do not depend on
the machine's core count), and datasets written under each test's own temporary folder; and
the tiny random-weight bundles the dream-env tests share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from tiny_models import LANE_ACTIONS, TINY_DYNAMICS, TINY_TOKENIZER, TINY_TRANSFORMER_TOKENIZER

from world_models.random_bundle import random_bundle

LANE_FRAMES = spaces.Box(0, 255, (16, 16, 3), np.uint8)

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


@pytest.fixture(scope="module")
def lane_bundle(tmp_path_factory) -> Path:
    """LaneSim's action space, 16x16 RGB frames, horizon 8."""
    root = tmp_path_factory.mktemp("dream")
    models = (TINY_TOKENIZER, TINY_DYNAMICS)
    return random_bundle(root / "lane", LANE_FRAMES, LANE_ACTIONS, *models, contexts=5, horizon=8)


@pytest.fixture(scope="module")
def transformer_bundle(tmp_path_factory) -> Path:
    """As `lane_bundle`, with a transformer tokenizer, whose decoder reads earlier frames."""
    root = tmp_path_factory.mktemp("dream")
    return random_bundle(
        root / "lane-transformer",
        LANE_FRAMES,
        LANE_ACTIONS,
        TINY_TRANSFORMER_TOKENIZER,
        TINY_DYNAMICS,
        contexts=5,
        horizon=8,
        tokenizer_kind="transformer",
    )
