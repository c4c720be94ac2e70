"""`dreamgym train-decoder`: only the decoder learns, from the bundle's own dreams; the new
bundle keeps everything else; bad settings are clear errors."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_models import TINY_DYNAMICS, TINY_TOKENIZER, TINY_TRANSFORMER_TOKENIZER

import envs  # noqa: F401
from data_collection.recording import collect
from experiments.cli import main
from world_models.checkpoint import load_tensors
from world_models.random_bundle import random_bundle
from world_models.tokenizer_cnn import CNNTokenizer, CNNTokenizerConfig
from world_models.tokenizer_transformer import TransformerTokenizer, TransformerTokenizerConfig

ENV_ID = "MiniGridPixels-Empty-8x8-v0"
FRAMES = spaces.Box(0, 255, (64, 64, 3), np.uint8)
TOKENIZER = TINY_TOKENIZER | dict(num_downsamples=4)  # a 4x4 grid of latents
FAST = ["--batch-size", "4", "--warmup", "1", "--log-every", "1", "--context", "2"]
FAST += ["--dream-windows", "16", "--eval-windows", "8"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoder")
    collect(ENV_ID, "noisy", 6, "test/empty-v0", data_dir=root / "data", progress=False)
    bundle = random_bundle(root / "bundle", FRAMES, spaces.Discrete(7), TOKENIZER, TINY_DYNAMICS)
    return root, bundle


def run_cli(*argv, capsys=None) -> str:
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in argv])
    assert done.value.code == 0
    return capsys.readouterr().out if capsys else ""


def test_the_decoder_learns_the_dreams_and_nothing_else_changes(setup, capsys) -> None:
    root, bundle = setup
    run = root / "run"
    argv = ["train-decoder", "--bundle", bundle, "--dataset", "test/empty-v0"]
    argv += ["--data-dir", root / "data", "--run-dir", run, "--steps", "40", "--lr", "3e-3"]
    printed = run_cli(*argv, *FAST, "--seq-len", "6", "--image-every", "40", capsys=capsys)
    found = re.search(r"PSNR ([\d.]+) dB with the bundle's decoder, ([\d.]+) dB", printed)
    before, after = float(found[1]), float(found[2])
    assert after > before + 3  # a random decoder's noise against frames it has learned to draw
    old, new = (load_tensors(b / "tokenizer.safetensors") for b in (bundle, run / "bundle"))
    changed = {k for k in old if not torch.equal(old[k], new[k])}
    assert changed and all(k.startswith("decoder.") for k in changed)
    assert any(k.startswith("encoder.") for k in old)
    for name in ("dynamics.safetensors", "contexts.safetensors"):
        old_t, new_t = load_tensors(bundle / name), load_tensors(run / "bundle" / name)
        assert all(torch.equal(old_t[k], new_t[k]) for k in old_t)
    config = json.loads((run / "bundle" / "config.json").read_text())
    assert config == json.loads((bundle / "config.json").read_text())
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert "decoder/dream_video" in events.Tags()["images"] and events.Scalars("train/mse")
    env = gym.make("Dream-v0", bundle=str(run / "bundle"))
    obs, _ = env.reset(seed=0)
    assert env.step(0)[0].shape == obs.shape == (64, 64, 3)


def test_a_killed_run_resumes_where_it_stopped(setup) -> None:
    root, bundle = setup
    run = root / "resumed"
    argv = ["train-decoder", "--bundle", bundle, "--dataset", "test/empty-v0"]
    argv += ["--data-dir", root / "data", "--run-dir", run, *FAST, "--ckpt-every", "1"]
    argv += ["--seq-len", "5"]
    run_cli(*argv, "--steps", "2")
    run_cli(*argv, "--steps", "3", "--resume")
    assert (run / "checkpoints" / "latest").read_text().strip().endswith("3")
    with pytest.raises(SystemExit) as again:  # not restarted by accident
        main([str(a) for a in argv] + ["--steps", "3"])
    assert again.value.code != 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seq-len", "2"], "leaves no frame to imagine"),
        ([], "ask for shorter windows"),  # the default, context + 16, outlasts every episode
        (["--seq-len", "4", "--recon-share", "1"], "--recon-share must be in [0, 1)"),
        (["--seq-len", "4", "--long-seq-len", "5"], "drop --long-seq-len"),
        (["--set", "latent_dim=8"], "takes no --set"),
    ],
)
def test_bad_settings_are_clear_errors(setup, capsys, extra, message) -> None:
    root, bundle = setup
    argv = ["train-decoder", "--bundle", bundle, "--dataset", "test/empty-v0"]
    argv += ["--data-dir", root / "data", "--run-dir", root / "bad", *FAST, *extra]
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in argv])
    assert done.value.code != 0 and message in capsys.readouterr().err


def test_a_bundle_of_another_env_is_refused(setup, tmp_path, capsys) -> None:
    root, _ = setup
    other = random_bundle(tmp_path / "b", FRAMES, spaces.Discrete(3), TOKENIZER, TINY_DYNAMICS)
    argv = ["train-decoder", "--bundle", other, "--dataset", "test/empty-v0"]
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in [*argv, "--data-dir", root / "data", "--run-dir", tmp_path / "r"]])
    assert done.value.code != 0 and "use a bundle of that env" in capsys.readouterr().err


@pytest.mark.parametrize(
    "tokenizer",
    [
        CNNTokenizer(CNNTokenizerConfig(image_size=16, **TINY_TOKENIZER)),
        TransformerTokenizer(
            TransformerTokenizerConfig(image_size=16, **TINY_TRANSFORMER_TOKENIZER)
        ),
    ],
    ids=["cnn", "transformer"],
)
def test_decoder_parameters_are_exactly_those_decode_uses(tokenizer) -> None:
    video = torch.rand(2, 3, 16, 16, 3)
    decoder = {id(p) for p in tokenizer.decoder_parameters()}
    tokenizer.encode(video).square().sum().backward()
    encoder = {id(p) for p in tokenizer.parameters() if p.grad is not None and p.grad.any()}
    tokenizer.zero_grad(set_to_none=True)
    tokenizer.decode(torch.rand(2, 3, tokenizer.num_latents, tokenizer.latent_dim)).sum().backward()
    decoded = {id(p) for p in tokenizer.parameters() if p.grad is not None and p.grad.any()}
    assert decoded == decoder and not encoder & decoder
    assert encoder | decoder == {id(p) for p in tokenizer.parameters()} - unused(tokenizer)


def unused(tokenizer) -> set[int]:
    """Parameters neither pass reads with random video: the MAE mask token (training only)."""
    return {id(tokenizer.mask_token)} if hasattr(tokenizer, "mask_token") else set()
