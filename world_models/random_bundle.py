"""A bundle with untrained (random) weights, for tests and benchmarks: speed and the env API do
not depend on the weights."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces


def random_bundle(
    path: str | os.PathLike,
    observation_space: spaces.Box,
    action_space: gym.Space,
    tokenizer: dict[str, Any] | None = None,
    dynamics: dict[str, Any] | None = None,
    contexts: int = 8,
    context_length: int = 4,
    horizon: int = 200,
    seed: int = 0,
    tokenizer_kind: str = "cnn",
) -> Path:
    """Write a bundle with untrained (random) weights and random start contexts, for tests and
    benchmarks. `tokenizer` / `dynamics` override fields of the tokenizer's config
    (`CNNTokenizerConfig`, or `TransformerTokenizerConfig` for tokenizer_kind="transformer") /
    `DynamicsConfig` (defaults: the full-size models). Parameters that start at zero (the
    reward and continue heads' output layers) get small random values, so rewards and
    continue probabilities vary."""
    from world_models.action_encoder import space_to_spec
    from world_models.bundle import save_bundle
    from world_models.dynamics import Dynamics, DynamicsConfig
    from world_models.tokenizer_cnn import CNNTokenizer, CNNTokenizerConfig
    from world_models.tokenizer_transformer import TransformerTokenizer, TransformerTokenizerConfig

    kinds = {
        "cnn": (CNNTokenizer, CNNTokenizerConfig),
        "transformer": (TransformerTokenizer, TransformerTokenizerConfig),
    }
    if tokenizer_kind not in kinds:
        raise ValueError(f"tokenizer_kind must be one of {sorted(kinds)}, got {tokenizer_kind!r}")
    model, config = kinds[tokenizer_kind]
    height, _, channels = observation_space.shape
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        tok = model(config(image_size=height, channels=channels, **(tokenizer or {})))
        dyn = Dynamics(
            DynamicsConfig(
                action_spec=space_to_spec(action_space),
                num_latents=tok.num_latents,
                latent_dim=tok.latent_dim,
                **(dynamics or {}),
            )
        )
        with torch.no_grad():  # the heads' output layers start at zero: make them vary
            for param in dyn.parameters():
                if not param.any():
                    param.normal_(0.0, 0.1)
    rng = np.random.default_rng(seed)
    shape = (contexts, context_length)
    obs = rng.integers(0, 256, (*shape, *observation_space.shape), dtype=np.uint8)
    action_space.seed(seed)
    dtype = np.float32 if isinstance(action_space, spaces.Box) else np.int64
    action = np.array([action_space.sample() for _ in range(contexts * context_length)], dtype)
    labeled = np.ones(shape, bool)
    labeled[:, 0] = False
    return save_bundle(
        path,
        env_id="random",
        observation_space=observation_space,
        action_space=action_space,
        models={"tokenizer": tok, "dynamics": dyn},
        contexts={
            "obs": obs,
            "action": action.reshape(*shape, *action_space.shape),
            "labeled": labeled,
        },
        sampling={"num_steps": dyn.config.num_sampling_steps},
        horizon=horizon,
    )
