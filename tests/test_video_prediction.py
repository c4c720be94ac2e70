"""The Moving MNIST video prediction benchmark: metric protocol, baseline, command, trainer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces

from experiments.cli import main as cli_main
from world_models.bundle import load_bundle
from world_models.masked_video import MaskedVideoConfig, MaskedVideoModel
from world_models.model_io import save_model
from world_models.random_bundle import random_bundle
from world_models.train_masked_video import train_masked_video
from world_models.trainer import TrainConfig
from world_models.video_prediction import (
    benchmark_data,
    hold_last_frame,
    load_masked_video,
    score,
    summarise,
    video_grid,
)

TINY = dict(image_size=16, patch_size=4, max_frames=6, dim=32, depth=1, num_heads=2)


def test_metric_protocol_on_known_inputs() -> None:
    target = torch.zeros(2, 3, 16, 16, 1)
    target[..., 4:12, 4:12, :] = 1.0
    same = score(target, target)
    assert torch.all(same["mse"] == 0) and torch.allclose(same["ssim"], torch.ones(2, 3))
    assert torch.all(same["psnr"] >= 99)
    shifted = score((target + 0.1).clamp(max=1.0), target)
    # 192 background pixels off by 0.1: MSE is their SUM, PSNR uses the per-pixel mean
    assert torch.allclose(shifted["mse"], torch.full((2, 3), 192 * 0.01))
    expected = -10 * np.log10(192 * 0.01 / 256)
    assert torch.allclose(shifted["psnr"], torch.full((2, 3), expected), atol=1e-4)
    assert torch.all(shifted["ssim"] < 1)
    summary = summarise({"psnr": torch.tensor([[10.0, 20.0], [30.0, 40.0]])})
    assert summary["psnr"] == [20.0, 30.0] and summary["mean"]["psnr"] == 25.0


def test_hold_last_frame_and_the_benchmark_data(tmp_path) -> None:
    frames = torch.arange(5)[None, :, None, None, None].expand(2, 5, 4, 4, 1)
    held = hold_last_frame(frames, context=3)
    assert held.shape == (2, 2, 4, 4, 1) and (held == 2).all()
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (20, 3, 64, 64), dtype=np.uint8))
    data = benchmark_data(4, 32, seed=1, mnist_test_seq=path)
    gen, std = data["generated"], data["mnist_test_seq"]
    assert gen["obs"].shape == (4, 20, 32, 32, 1) and gen["action"].shape == (4, 20, 2)
    assert not gen["labeled"][:, 0].any() and gen["labeled"][:, 1:].all()
    assert std["obs"].shape == (3, 20, 32, 32, 1) and not std["labeled"].any()
    again = benchmark_data(4, 32, seed=1)["generated"]
    assert torch.equal(again["obs"], gen["obs"])
    grid = video_grid({"real": gen["obs"][:2], "x": gen["obs"][:2, 10:]}, context=10)
    assert grid.shape == (20, 2 * 33, 2 * 33, 1)


def test_command_on_a_tiny_random_model(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    model_dir = save_model(MaskedVideoModel(MaskedVideoConfig(**TINY)), tmp_path / "mv")
    dyn = random_bundle(
        tmp_path / "dyn",
        spaces.Box(0, 255, (32, 32, 1), np.uint8),
        spaces.Box(-1.0, 1.0, (2,), np.float32),
        dict(base_channels=8, max_channels=16, num_downsamples=2, blocks_per_stage=0),
        dict(dim=32, depth=2, num_heads=2, num_kv_heads=1, time_attention_every=2, k_max=4),
        contexts=2,
    )
    np.save(tmp_path / "seq.npy", np.zeros((20, 2, 64, 64), dtype=np.uint8))
    out = tmp_path / "report"
    argv = ["eval-video-prediction", "--model", str(model_dir), "--sequences", "3"]
    argv += ["--context", "4", "--horizon", "3", "--num-steps", "2", "--without-actions"]
    argv += ["--bundle", str(dyn), "--mnist-test-seq", str(tmp_path / "seq.npy")]
    argv += ["--score-size", "32"]  # the 16x16 model's frames are scored at 32x32
    with pytest.raises(SystemExit) as done:
        cli_main([*argv, "--out", str(out)])
    assert done.value.code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    methods = metrics["sources"]["generated"]["methods"]
    assert set(methods) == {
        "masked_video",
        "masked_video_no_actions",
        "hold_last_frame",
        "dynamics",
    }
    assert len(methods["masked_video"]["psnr"]) == 3 and metrics["horizon"] == [1, 2, 3]
    assert metrics["image_size"] == 32 and metrics["model_image_size"] == 16
    assert set(metrics["sources"]["mnist_test_seq"]["methods"]) == {
        "masked_video",
        "hold_last_frame",
        "dynamics",
    }
    for name in ("report.md", "metrics.png", "predictions_generated.mp4"):
        assert (out / name).stat().st_size > 0
    assert "hold_last_frame | psnr" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        cli_main(["eval-video-prediction", "--model", str(tmp_path / "nothing")])
    assert bad.value.code == 2


def test_trainer_writes_a_loadable_bundle(tmp_path) -> None:
    train = TrainConfig(steps=2, batch_size=2, seq_len=4, warmup=1, log_every=1, image_every=1)
    bundle = train_masked_video("generated", tmp_path / "run", train, {**TINY, "max_frames": 4})
    loaded = load_bundle(bundle)
    config = json.loads((bundle / "config.json").read_text())
    assert config["models"]["masked_video"]["kind"] == "masked-video"
    assert config["sampling"]["num_steps"] == 20 and config["env_id"] == "MovingMNIST-v0"
    assert loaded.contexts["obs"].shape[2:] == (64, 64, 1)  # MovingMNIST-v0's frames
    assert isinstance(load_masked_video(bundle), MaskedVideoModel)
    with pytest.raises(FileExistsError):
        train_masked_video("generated", tmp_path / "run", train, TINY)
    start = TrainConfig(steps=0, seq_len=4)
    tuned = {**TINY, "max_frames": 4, "context_corrupt_max": 0.1}
    with pytest.warns(UserWarning, match=r"differ in \['context_corrupt_max'\]"):
        copy = train_masked_video("generated", tmp_path / "ft", start, tuned, init_from=bundle)
    for key, value in load_masked_video(copy).state_dict().items():
        assert torch.equal(value, loaded.models["masked_video"].state_dict()[key]), key
    with pytest.raises(ValueError, match="architecture"), pytest.warns(UserWarning):
        train_masked_video(
            "generated", tmp_path / "ft2", start, {**tuned, "dim": 64}, init_from=bundle
        )
    with pytest.raises(ValueError, match="max_frames"):
        train_masked_video(
            "generated", tmp_path / "run2", TrainConfig(seq_len=8), TINY | {"max_frames": 4}
        )
