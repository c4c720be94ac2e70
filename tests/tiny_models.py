"""Model settings small enough for tests: a CNN tokenizer, a transformer tokenizer and a dynamics
model of a few thousand parameters, for `world_models.random_bundle.random_bundle`; LaneSim's
action space; and `with_sampling`, a bundle copied with other sampling settings."""

import json
import shutil
from pathlib import Path

from gymnasium import spaces

LANE_ACTIONS = spaces.MultiDiscrete([21, 21, 2, 2, 2, 2, 2])

TINY_TOKENIZER = dict(
    base_channels=8, max_channels=16, num_downsamples=2, blocks_per_stage=0, latent_dim=4
)
TINY_TRANSFORMER_TOKENIZER = dict(
    patch_size=4,
    num_latents=8,
    latent_dim=4,
    num_registers=1,
    dim=32,
    encoder_depth=2,
    decoder_depth=2,
    num_heads=2,
    time_every=2,
)
TINY_DYNAMICS = dict(
    dim=32,
    depth=2,
    num_heads=2,
    num_kv_heads=1,
    time_attention_every=2,
    num_registers=1,
    k_max=4,
    context_length=6,
    num_sampling_steps=2,
)


def with_sampling(bundle: Path, folder: Path, **settings) -> Path:
    """A copy of `bundle` in `folder` with sampling settings added to its config."""
    shutil.copytree(bundle, folder)
    config = json.loads((folder / "config.json").read_text())
    config["sampling"].update(settings)
    (folder / "config.json").write_text(json.dumps(config))
    return folder
