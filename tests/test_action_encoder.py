"""Tests for action specs and the action encoder (world_models/action_encoder.py)."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from world_models.action_encoder import ActionEncoder, space_to_spec, spec_to_space


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Discrete(7, start=1),
        gym.spaces.MultiDiscrete([21, 21, 2, 2, 2, 2, 2]),
        gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32),
    ],
)
def test_action_encoder_spaces(space: gym.Space) -> None:
    spec = space_to_spec(space)
    assert spec_to_space(json.loads(json.dumps(spec))) == space
    enc = ActionEncoder(spec, 16)
    space.seed(0)
    actions = torch.as_tensor(np.stack([space.sample() for _ in range(6)])).reshape(
        2, 3, *space.shape
    )
    labeled = torch.tensor([[False, True, True], [True, True, False]])
    out = enc(actions, labeled)
    assert out.shape == (2, 3, 16)
    assert torch.equal(out[0, 0], enc.no_action) and torch.equal(out[1, 2], enc.no_action)
    assert not torch.equal(out[0, 1], enc.no_action)
    garbage = actions.clone()
    garbage[0, 0] = 999 if space.dtype != np.float32 else float("nan")
    assert torch.equal(enc(garbage, labeled), out)  # unlabeled values are ignored
    assert enc(enc.null_action(2, 3)).shape == (2, 3, 16)


def test_action_encoder_errors_and_clipping() -> None:
    disc = ActionEncoder(space_to_spec(gym.spaces.Discrete(3)), 8)
    with pytest.raises(ValueError, match="out of range"):
        disc(torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="integers"):
        disc(torch.tensor([0.5]))
    multi = ActionEncoder(space_to_spec(gym.spaces.MultiDiscrete([3, 2])), 8)
    with pytest.raises(ValueError, match="shape"):
        multi(torch.zeros(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="out of range"):
        multi(torch.tensor([[0, 2]]))
    box = ActionEncoder(space_to_spec(gym.spaces.Box(-2.0, 2.0, (2,))), 8)
    assert torch.allclose(box(torch.tensor([[5.0, -9.0]])), box(torch.tensor([[2.0, -2.0]])))
    with pytest.raises(ValueError, match="labeled has shape"):
        box(torch.zeros(4, 2), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="unsupported action space"):
        space_to_spec(gym.spaces.Dict({"a": gym.spaces.Discrete(2)}))
    with pytest.raises(ValueError, match="bad action spec"):
        spec_to_space({"type": "Tuple"})
    for shape in ("64", [64, "64", 3], [2.5], None):
        with pytest.raises(ValueError, match="'shape' must be a list of whole numbers"):
            spec_to_space({"type": "Box", "shape": shape, "low": 0, "high": 255, "dtype": "uint8"})
