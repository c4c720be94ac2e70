"""Suite-wide settings: one torch thread (small ops run faster and results do not depend on
the machine's core count), and datasets written under each test's own temporary folder."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
