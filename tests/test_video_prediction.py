"""The Moving MNIST video prediction benchmark: metric protocol, baseline, command, trainer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from data_collection.recording import collect
from envs.moving_mnist import load_mnist_test_seq
from experiments.cli import main as cli_main
from world_models.bundle import load_bundle
from world_models.masked_video import MaskedVideoConfig, MaskedVideoModel
from world_models.model_io import save_model
from world_models.random_bundle import random_bundle
from world_models.train_masked_video import train_masked_video
from world_models.trainer import TrainConfig
from world_models.video_prediction import (
    benchmark_data,
    evaluate_video_prediction,
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
    printed = capsys.readouterr()
    assert "hold_last_frame | psnr" in printed.out
    # 3 generated sequences x 3 predictors, 2 of the file x 2 (no ego actions to drop there)
    assert "predicted sequences: 100%" in printed.err and "13/13" in printed.err
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


def test_mnist_test_seq_length_and_partial_load(tmp_path) -> None:
    path = tmp_path / "seq.npy"
    stored = np.random.default_rng(0).integers(0, 256, (20, 5, 64, 64), dtype=np.uint8)
    np.save(path, stored)
    first = load_mnist_test_seq(path, num=2)
    assert first.shape == (2, 20, 64, 64, 1) and first.flags.c_contiguous
    assert np.array_equal(first[..., 0], stored[:, :2].transpose(1, 0, 2, 3))
    with pytest.raises(ValueError, match="num must be >= 1"):
        load_mnist_test_seq(path, num=0)
    with pytest.raises(ValueError, match="mnist_test_seq has 20"):
        benchmark_data(2, 16, mnist_test_seq=path, length=21)
    # refused up front: the model (here missing) is never loaded
    with pytest.raises(ValueError, match="context \\+ horizon = 22 frames"):
        evaluate_video_prediction(tmp_path / "nothing", 2, 10, 12, mnist_test_seq=path)


def test_temperature_needs_sampled_decoding(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    model_dir = save_model(MaskedVideoModel(MaskedVideoConfig(**TINY)), tmp_path / "mv")
    argv = ["eval-video-prediction", "--model", str(model_dir), "--sequences", "2"]
    argv += ["--context", "2", "--horizon", "1", "--num-steps", "1", "--temperature", "0.5"]
    with pytest.raises(SystemExit) as refused:
        cli_main([*argv, "--out", str(tmp_path / "a")])
    assert refused.value.code == 2 and "--decode sample" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        cli_main([*argv, "--decode", "sample", "--out", str(tmp_path / "b")])
    assert done.value.code == 0
    sampling = json.loads((tmp_path / "b" / "metrics.json").read_text())["sampling"]
    assert sampling["median"] is False and sampling["temperature"] == 0.5
    with pytest.raises(SystemExit) as bad_size:
        cli_main([*argv[:3], "--score-size", "0"])
    assert bad_size.value.code == 2 and "must be >= 1" in capsys.readouterr().err


def test_benchmark_moves_digits_as_the_training_data_did(tmp_path) -> None:
    train = TrainConfig(steps=1, batch_size=2, seq_len=4, warmup=1, log_every=1, image_every=9)
    tiny = {**TINY, "max_frames": 4}
    bundle = train_masked_video(
        "generated", tmp_path / "run", train, tiny, max_speed=3.6, speed=(3.6, 3.6)
    )
    config = json.loads((bundle / "config.json").read_text())["models"]["masked_video"]["config"]
    assert config["data_max_speed"] == 3.6 and config["data_speed"] == [3.6, 3.6]
    results = evaluate_video_prediction(bundle, 2, 2, 2, sampling={"num_steps": 1})
    assert results["data"] == {"max_speed": 3.6, "speed": [3.6, 3.6]}
    fast = benchmark_data(2, 16, length=4, max_speed=3.6, speed=(3.6, 3.6))["generated"]
    assert torch.equal(results["_frames"]["generated"]["real"], fast["obs"])
    assert not torch.equal(fast["obs"], benchmark_data(2, 16, length=4)["generated"]["obs"])
    # a model saved before the record: the defaults
    old = save_model(MaskedVideoModel(MaskedVideoConfig(**TINY)), tmp_path / "old")
    spec = json.loads((old / "config.json").read_text())
    for key in ("data_max_speed", "data_speed"):
        del spec["config"][key]
    (old / "config.json").write_text(json.dumps(spec))
    assert load_masked_video(old).config.data_speed == [1.0, 2.0]
    with pytest.raises(ValueError, match="--max-speed"):
        train_masked_video("generated", tmp_path / "r2", train, {**tiny, "data_max_speed": 5.0})


def test_trainer_checks_windows_before_training(tmp_path) -> None:
    tiny = {**TINY, "max_frames": 4}
    for bad, match in [
        (dict(seq_len=1), "need >= 2 frames"),
        (dict(seq_len=4, long_seq_len=6), "--long-seq-len 6 exceeds the model's max_frames=4"),
    ]:
        with pytest.raises(ValueError, match=match):
            train_masked_video("generated", tmp_path / "bad", TrainConfig(**bad), tiny)
        assert not (tmp_path / "bad").exists()
    train = TrainConfig(steps=1, batch_size=2, seq_len=3, warmup=1, log_every=1, image_every=9)
    with pytest.warns(UserWarning, match="positions >= 3 are never trained"):
        train_masked_video("generated", tmp_path / "short", train, tiny)


def test_trainer_checks_dataset_frames_before_training(tmp_path) -> None:
    collect("MiniGridPixels-Empty-8x8-v0", "expert", 2, "test/empty-v0", tmp_path, progress=False)
    train = TrainConfig(steps=1, batch_size=2, seq_len=4, warmup=1, log_every=1, image_every=9)
    tiny = {**TINY, "max_frames": 4}

    def run(name: str, overrides: dict) -> Path:
        return train_masked_video(
            "test/empty-v0", tmp_path / name, train, {**tiny, **overrides}, str(tmp_path), 0.5
        )

    with pytest.raises(ValueError, match="3 channels, the model 1: pass --set channels=3"):
        run("gray", {})
    with pytest.raises(ValueError, match="64x64 frames cannot be resized .* image_size"):
        run("odd", {"channels": 3, "image_size": 24})
    assert not (tmp_path / "gray").exists() and not (tmp_path / "odd").exists()
    assert load_bundle(run("rgb", {"channels": 3})).models["masked_video"].config.channels == 3
