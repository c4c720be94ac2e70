"""The world-model commands end to end on a tiny dataset: collect -> train-tokenizer ->
train-dynamics (writes a bundle) -> eval-world-model / export-bundle -> a dream env."""

from __future__ import annotations

import json
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_models import with_sampling

import envs  # noqa: F401
from data_collection.recording import collect
from data_collection.sequence_view import SequenceView
from experiments.cli import main
from world_models.bundle import load_bundle, start_contexts
from world_models.checkpoint import CheckpointError
from world_models.evaluate import evaluate_world_model, summary_table, write_report
from world_models.runs import load_trained

TINY_TOKENIZER = [
    "--set",
    "base_channels=8",
    "--set",
    "max_channels=8",
    "--set",
    "blocks_per_stage=0",
]
TINY_DYNAMICS = [
    *("--set", "dim=32", "--set", "depth=2", "--set", "num_heads=2", "--set", "num_kv_heads=1"),
    *("--set", "time_attention_every=2", "--set", "num_registers=1", "--set", "k_max=4"),
]
FAST = ["--batch-size", "2", "--seq-len", "4", "--warmup", "1", "--log-every", "1"]


def run_cli(*argv: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    assert exit_info.value.code == 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("wm")
    data = root / "data"
    collect(
        "MiniGridPixels-Empty-8x8-v0", "noisy", 6, "test/empty-v0", data_dir=data, progress=False
    )
    tok, dyn = root / "tok", root / "dyn"
    run_cli(
        "train-tokenizer",
        "--dataset",
        "test/empty-v0",
        "--data-dir",
        data,
        "--run-dir",
        tok,
        "--perceptual",
        "none",
        "--steps",
        "3",
        *TINY_TOKENIZER,
        *FAST,
    )
    run_cli(
        "train-dynamics",
        "--dataset",
        "test/empty-v0",
        "--data-dir",
        data,
        "--run-dir",
        dyn,
        "--tokenizer",
        tok / "tokenizer",
        "--steps",
        "3",
        "--horizon",
        "7",
        "--image-every",
        "3",
        *TINY_DYNAMICS,
        *FAST,
    )
    return root, data, tok, dyn


def test_training_writes_models_checkpoints_and_a_bundle(trained):
    _, _, tok, dyn = trained
    for run in (tok, dyn):
        assert (run / "checkpoints" / "latest").is_file()
        assert list((run / "tensorboard").iterdir())
        assert json.loads((run / "run.json").read_text())["train"]["steps"] == 3
    events = EventAccumulator(str(dyn / "tensorboard"))
    events.Reload()
    assert "dynamics/dream_video" in events.Tags()["images"]
    assert events.Scalars("dynamics/dream_psnr")[0].step == 3
    bundle = load_bundle(dyn / "bundle")
    assert bundle.config["env_id"] == "MiniGridPixels-Empty-8x8-v0"
    assert bundle.config["horizon"] == 7
    assert bundle.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)


def test_bundle_serves_a_dream_env_with_the_real_spaces(trained):
    _, _, _, dyn = trained
    env = gym.make("Dream-v0", bundle=str(dyn / "bundle"))
    real = gym.make("MiniGridPixels-Empty-8x8-v0")
    assert env.observation_space == real.observation_space
    assert env.action_space == real.action_space
    obs, _ = env.reset(seed=0)
    for _ in range(7):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs.shape == (64, 64, 3) and np.isfinite(reward)
        if terminated or truncated:
            break
    assert terminated or truncated


def test_masked_video_on_a_dataset_serves_the_real_spaces(trained):
    """A 16x16 RGB masked video model trained on 64x64 frames serves 64x64 dream frames."""
    root, data, _, _ = trained
    run_cli(
        "train-dynamics",
        "--kind",
        "masked-video",
        "--dataset",
        "test/empty-v0",
        "--data-dir",
        data,
        "--run-dir",
        root / "mv",
        "--steps",
        "1",
        "--context-length",
        "2",
        *("--set", "image_size=16", "--set", "channels=3", "--set", "max_frames=4"),
        *("--set", "dim=32", "--set", "depth=1", "--set", "num_heads=2"),
        *FAST,
    )
    env = gym.make("Dream-v0", bundle=str(root / "mv" / "bundle"), num_steps=2)
    real = gym.make("MiniGridPixels-Empty-8x8-v0")
    assert env.observation_space == real.observation_space
    assert env.action_space == real.action_space
    env.reset(seed=0)
    obs, reward, terminated, _, _ = env.step(env.action_space.sample())
    assert real.observation_space.contains(obs) and reward == 0.0 and not terminated


def test_eval_and_export_from_a_run_folder(trained, capsys):
    root, data, tok, dyn = trained
    out = root / "eval"
    run_cli(
        "eval-world-model",
        "--bundle",
        dyn / "bundle",
        "--dataset",
        "test/empty-v0",
        "--data-dir",
        data,
        "--context",
        "2",
        "--horizon",
        "2",
        "--windows",
        "2",
        "--num-steps",
        "1",
        "4",
        "--out",
        out,
    )
    progress = capsys.readouterr().err  # 2 frames for each of K = 1, K = 4, other actions
    assert "imagined frames: 100%" in progress and "6/6" in progress
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["dream_k4"]["psnr"]) == len(metrics["hold_last_frame"]["psnr"]) == 2
    assert metrics["perceptual_backend"] == "stlpips"
    assert len(metrics["hold_last_frame"]["perceptual"]) == 2
    assert min(metrics["dream_k4"]["perceptual"]) > 0  # a 3-step model's dreams are not real
    assert metrics["other_actions"]["num_steps"] == 1 and len(metrics["other_actions"]["psnr"]) == 2
    # over changed pixels hold-last-frame is wrong by the whole change (None: nothing changed)
    held, dreamed = metrics["hold_last_frame"]["changed_psnr"], metrics["dream_k4"]["changed_psnr"]
    assert len(held) == len(dreamed) == 2
    assert all(v is None or v < metrics["hold_last_frame"]["psnr"][i] for i, v in enumerate(held))
    assert (out / "psnr.png").is_file() and (out / "real_vs_dream.mp4").is_file()
    # with static-pixel copy above any change, the dream is hold-last-frame; the dream decoded
    # alone, scored beside it, is the plain bundle's dream on the same windows
    still = with_sampling(dyn / "bundle", root / "still", copy_threshold=0.999)
    copied = evaluate_world_model(
        still,
        "test/empty-v0",
        data_dir=data,
        context=2,
        horizon=2,
        windows=2,
        num_steps=(1,),
    )
    assert copied["dream_k1"]["psnr"] == copied["hold_last_frame"]["psnr"]
    assert copied["decoded_alone"]["psnr"] == metrics["dream_k1"]["psnr"]
    assert "dream K=1, no static-pixel copy" in summary_table(copied)
    assert (write_report(copied, root / "still-eval") / "psnr.png").is_file()
    run_cli(
        "export-bundle",
        "--tokenizer",
        tok,
        "--dynamics",
        dyn,
        "--dataset",
        "test/empty-v0",
        "--data-dir",
        data,
        "--out",
        root / "exported",
        "--contexts",
        "2",
    )
    assert set(load_bundle(root / "exported").models) == {"tokenizer", "dynamics"}


def test_start_contexts_from_episode_starts_or_anywhere(trained):
    _, data, _, _ = trained
    view = SequenceView("test/empty-v0", data_dir=data)
    episodes = [view.episode(i) for i in range(view.num_episodes)]
    first = start_contexts(view, count=4, length=2)
    assert first["obs"].shape[:2] == (4, 2)
    starts = [ep["obs"][:2] for ep in episodes]
    assert all(any(np.array_equal(c, s) for s in starts) for c in first["obs"])
    anywhere = start_contexts(view, count=32, length=2, anywhere=True)
    assert anywhere["obs"].shape[:2] == anywhere["action"].shape[:2] == (32, 2)
    offsets = []  # where each window sits in its episode: it must be a real window
    for c, a in zip(anywhere["obs"], anywhere["action"], strict=True):
        found = [
            o
            for ep in episodes
            for o in range(len(ep["obs"]) - 1)
            if np.array_equal(ep["obs"][o : o + 2], c)
            and np.array_equal(ep["action"][o : o + 2], a)
        ]
        assert found
        offsets.append(min(found))
    assert max(offsets) > 0  # not only episode starts


def test_resume_continues_and_a_finished_run_is_not_restarted(trained):
    _, data, tok, _ = trained
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "train-tokenizer",
                "--dataset",
                "test/empty-v0",
                "--data-dir",
                str(data),
                "--run-dir",
                str(tok),
                "--perceptual",
                "none",
            ]
        )
    assert exit_info.value.code == 2  # holds checkpoints: needs --resume
    run_cli(
        "train-tokenizer",
        "--dataset",
        "test/empty-v0",
        "--data-dir",
        data,
        "--run-dir",
        tok,
        "--resume",
    )


def test_load_trained_reads_model_folders_and_runs(trained, tmp_path):
    _, _, tok, dyn = trained
    assert (
        load_trained(tok, "tokenizer").num_latents
        == load_trained(tok / "tokenizer", "x").num_latents
    )
    assert load_trained(dyn, "dynamics").config.depth == 2
    bundle = dyn / "bundle"
    assert load_trained(bundle, "dynamics").config.depth == 2
    with pytest.raises(CheckpointError, match="holds no 'policy' model"):
        load_trained(bundle, "policy")
    with pytest.raises(CheckpointError, match="neither a model, bundle nor training run"):
        load_trained(tmp_path, "tokenizer")


def test_train_dynamics_continues_from_a_bundle(trained, tmp_path, capsys):
    _, data, _, dyn = trained
    bundle = dyn / "bundle"
    args = ["train-dynamics", "--dataset", "test/empty-v0", "--data-dir", data, "--steps", "1"]
    args += ["--tokenizer", bundle, "--init-from", bundle, "--lr", "0", *FAST]
    run_cli(*args, "--run-dir", tmp_path / "more")  # the architecture comes from the bundle
    source, tuned = load_bundle(bundle).models, load_bundle(tmp_path / "more" / "bundle").models
    for name in ("tokenizer", "dynamics"):
        for key, value in tuned[name].state_dict().items():
            assert value.equal(source[name].state_dict()[key]), (name, key)
    with pytest.raises(SystemExit), pytest.warns(UserWarning, match="differ in"):
        main([str(a) for a in args] + ["--set", "dim=64", "--run-dir", str(tmp_path / "other")])
    assert "dynamics architecture differs" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a model that does not read this tokenizer's latents
        main([str(a) for a in args] + ["--set", "latent_dim=3", "--run-dir", str(tmp_path / "l")])
    assert "but the tokenizer writes" in capsys.readouterr().err
    args[args.index("--init-from") + 1] = dyn / "bundle" / ".." / ".." / "tok" / "tokenizer"
    with pytest.raises(SystemExit):
        main([str(a) for a in args] + ["--run-dir", str(tmp_path / "third")])
    assert "holds a 'cnn-tokenizer' model, not a 'dynamics'" in capsys.readouterr().err


def test_a_tokenizer_of_other_frames_is_refused_before_training(trained):
    from types import SimpleNamespace

    from world_models.train_dynamics import _check_fits

    _, _, tok, dyn = trained
    tokenizer, dynamics = load_trained(tok, "tokenizer"), load_trained(dyn, "dynamics")
    view = SimpleNamespace(
        observation_space=gym.spaces.Box(0, 255, (32, 32, 1), np.uint8), dataset_id="x/gray-v0"
    )
    with pytest.raises(ValueError, match=r"observes \(32, 32, 1\).*train-tokenizer --dataset x"):
        _check_fits(dynamics.config, tokenizer, view)


def run_cli_error(capsys, *argv: str) -> str:
    """Run a command that must fail cleanly; returns its one-line error."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    return err


def test_bad_eval_and_export_input_is_a_clear_error(trained, tmp_path, capsys):
    root, data, tok, dyn = trained
    lane = root / "lane-data"
    collect("LaneSim-v0", "random", 1, "test/lane-v0", data_dir=lane, progress=False)
    common = ("--bundle", dyn / "bundle", "--data-dir")
    err = run_cli_error(capsys, "eval-world-model", *common, lane, "--dataset", "test/lane-v0")
    assert "dataset test/lane-v0 acts in MultiDiscrete" in err and "Discrete(7)" in err
    err = run_cli_error(
        capsys, "eval-world-model", *common, data, "--dataset", "test/empty-v0", "--windows", "0"
    )
    assert "argument --windows: must be >= 1, got 0" in err
    recorded = json.loads((dyn / "bundle" / "config.json").read_text())["training"]
    assert recorded == {"dataset_id": "test/empty-v0", "holdout": 0.1}
    every = tmp_path / "every"  # a bundle whose dynamics saw every episode
    shutil.copytree(dyn / "bundle", every)
    config = json.loads((every / "config.json").read_text())
    config["training"]["holdout"] = 0.0
    (every / "config.json").write_text(json.dumps(config))
    err = run_cli_error(
        capsys,
        "eval-world-model",
        "--bundle",
        every,
        "--data-dir",
        data,
        "--dataset",
        "test/empty-v0",
    )
    assert "no held-out episodes" in err
    shutil.rmtree(every)
    out = tmp_path / "bundle"
    export = ("export-bundle", "--tokenizer", tok, "--dynamics", dyn, "--out", out)
    err = run_cli_error(
        capsys, *export, "--dataset", "test/empty-v0", "--data-dir", data, "--num-steps", "3"
    )
    assert "no bundle written" in err and "power of two" in err
    err = run_cli_error(
        capsys, *export, "--dataset", "test/empty-v0", "--data-dir", data, "--copy-threshold", "2"
    )
    assert "no bundle written" in err and "copy_threshold is a change in [0, 1]" in err
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written
    mine = tmp_path / "mine"  # a folder of the user's: never replaced
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    args = ("--dataset", "test/empty-v0", "--data-dir", data)
    err = run_cli_error(capsys, *export[:-1], mine, *args)
    assert "exists and is not a bundle" in err and (mine / "notes.txt").exists()
    run_cli(*export, *args)  # a new folder, then a bundle there, may be (re)written
    run_cli(*export, *args, "--copy-threshold", "0.1")
    assert json.loads((out / "config.json").read_text())["sampling"]["copy_threshold"] == 0.1
    err = run_cli_error(
        capsys,
        "train-dynamics",
        *args,
        "--tokenizer",
        tok,
        "--run-dir",
        tmp_path / "long",
        "--context-length",
        "500",
        *TINY_DYNAMICS,
        *FAST,
    )
    assert "no episode has 500 steps" in err and not (tmp_path / "long" / "checkpoints").exists()


def test_the_seed_decides_the_initial_weights_of_a_run(trained, tmp_path):
    _, data, tok, _ = trained
    weights = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        args = ["--dataset", "test/empty-v0", "--data-dir", data, "--steps", "1", "--seed", seed]
        run_cli(
            "train-tokenizer",
            *args,
            "--run-dir",
            tmp_path / f"tok-{name}",
            "--perceptual",
            "none",
            *TINY_TOKENIZER,
            *FAST,
        )
        run_cli(
            "train-dynamics",
            *args,
            "--run-dir",
            tmp_path / f"dyn-{name}",
            "--tokenizer",
            tok / "tokenizer",
            *TINY_DYNAMICS,
            *FAST,
        )
        runs = {"tokenizer": tmp_path / f"tok-{name}", "dynamics": tmp_path / f"dyn-{name}"}
        models = [load_trained(run, kind) for kind, run in runs.items()]
        weights.append([torch.cat([p.flatten() for p in m.parameters()]) for m in models])
    assert all(torch.equal(x, y) for x, y in zip(weights[0], weights[1], strict=True))
    assert not any(torch.equal(x, y) for x, y in zip(weights[0], weights[2], strict=True))


def test_a_transformer_tokenizer_decodes_dreams_with_its_training_window(trained, tmp_path):
    """`--kind transformer`: the decoder's dream context is the longest training window
    less one frame (here --long-seq-len 6), unless set."""
    _, data, _, _ = trained
    tiny = ["dim=32", "encoder_depth=1", "decoder_depth=2", "num_heads=2", "time_every=2"]
    for name, extra in (("auto", []), ("set", ["--set", "context_length=2"])):
        run_cli(
            "train-tokenizer",
            *("--dataset", "test/empty-v0", "--data-dir", data, "--steps", "1"),
            *("--kind", "transformer", "--perceptual", "none", "--run-dir", tmp_path / name),
            *(arg for setting in tiny for arg in ("--set", setting)),
            *extra,
            *FAST,
            *("--long-seq-len", "6"),
        )
    assert load_trained(tmp_path / "auto", "tokenizer").config.context_length == 5
    assert load_trained(tmp_path / "set", "tokenizer").config.context_length == 2
