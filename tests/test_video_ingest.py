"""Gameplay-video ingestion: LaneSim rendered to video + labels comes back as the same data."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

import envs  # noqa: F401  (registers ids)
from data_collection.datasets import load_dataset
from data_collection.policies import make_policy
from data_collection.sequence_view import SequenceView
from data_collection.video import (
    KEY_NAMES,
    FrameLabel,
    ingest_video,
    label_steps,
    lane_reward_constants,
)
from envs.lane import CENTER_BIN
from experiments.cli import main as cli_main
from experiments.videos import write_video

STEPS = 400  # long enough for the noisy expert to earn gold


def label_of(action: np.ndarray | None, info: dict) -> dict:
    """The label a recorder would write for a frame on which `action` was given."""
    label = {"move": None, "keys": {}, "gold": info["gold"], "health": info["health"]}
    if action is not None:
        if (action[0], action[1]) != (CENTER_BIN, CENTER_BIN):
            label["move"] = [int(action[0]) / 20, int(action[1]) / 20]
        label["keys"] = {k: bool(v) for k, v in zip(KEY_NAMES, action[2:], strict=True)}
    return label


def write_labels(path, labels: list[dict]) -> str:
    path.write_text("".join(json.dumps(label) + "\n" for label in labels))
    return str(path)


@pytest.fixture(scope="module")
def rollout(tmp_path_factory):
    """A LaneSim episode (noisy expert) as an mp4 at 20 fps plus its label file."""
    root = tmp_path_factory.mktemp("video")
    env = gym.make("LaneSim-v0")
    policy = make_policy("noisy", "LaneSim-v0", epsilon=0.3)
    obs, info = env.reset(seed=1)  # a seed whose 400 steps earn gold
    policy.reset(env, 1)
    frames, actions, rewards, labels = [obs], [], [], []
    for _ in range(STEPS):
        action = np.asarray(policy.act(obs))
        labels.append(label_of(action, info))
        obs, reward, _, _, info = env.step(action)
        frames.append(obs)
        actions.append(action)
        rewards.append(reward)
    labels.append(label_of(None, info))
    video = write_video(np.stack(frames), root / "episode.mp4", fps=20, scale=1)
    return {
        "root": root,
        "video": str(video),
        "labels": write_labels(root / "labels.jsonl", labels),
        "label_list": labels,
        "frames": np.stack(frames),
        "actions": np.stack(actions),
        "rewards": np.asarray(rewards),
    }


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_mp4_with_labels_round_trip(rollout, tmp_path):
    assert rollout["rewards"].max() > 0  # the comparison below includes real gold rewards
    ingest_video(rollout["video"], "lane/video-v0", rollout["labels"], data_dir=tmp_path,
                 progress=False)  # fmt: skip
    ep = load_dataset("lane/video-v0", tmp_path)[0]
    np.testing.assert_array_equal(ep.actions, rollout["actions"])
    np.testing.assert_array_equal(ep.rewards, rollout["rewards"])
    assert ep.observations.shape == rollout["frames"].shape
    assert psnr(ep.observations, rollout["frames"]) > 25.0
    mae = np.abs(ep.observations.astype(np.float64) - rollout["frames"]).mean(axis=(1, 2, 3))
    assert mae.max() < 10.0
    assert ep.infos["labeled"].tolist() == [False] + [True] * STEPS
    assert not ep.terminations.any() and ep.truncations[-1]
    view = SequenceView("lane/video-v0", tmp_path)
    assert view.env_id == "LaneSim-v0" and view.action_space.nvec.tolist() == [21] * 2 + [2] * 5
    np.testing.assert_array_equal(view.episode(0)["action"][1:], rollout["actions"])


def test_png_folder_is_lossless(rollout, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for j, frame in enumerate(rollout["frames"][:50]):  # unpadded names: 2 sorts after 10 naively
        Image.fromarray(frame).save(folder / f"frame{j}.png")
    labels = write_labels(tmp_path / "l.jsonl", rollout["label_list"][:50])
    ingest_video(folder, "lane/png-v0", labels, data_dir=tmp_path, progress=False)
    ep = load_dataset("lane/png-v0", tmp_path)[0]
    np.testing.assert_array_equal(ep.observations, rollout["frames"][:50])
    np.testing.assert_array_equal(ep.actions, rollout["actions"][:49])
    np.testing.assert_array_equal(ep.rewards, rollout["rewards"][:49])


def test_downsampling_keeps_every_key_press_and_click(rollout, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    frames = rollout["frames"][:10]
    for j, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{j:03d}.png")
    labels = [{"move": None, "keys": [], "gold": 0, "health": 100}] * 10
    labels[1] = {"move": [0.0, 1.0], "keys": ["q"], "gold": 0, "health": 100}  # a dropped frame
    path = write_labels(tmp_path / "l.jsonl", labels)
    ingest_video(folder, "lane/half-v0", path, fps=10, source_fps=20, data_dir=tmp_path,
                 progress=False)  # fmt: skip
    ep = load_dataset("lane/half-v0", tmp_path)[0]
    np.testing.assert_array_equal(ep.observations, frames[::2])
    assert ep.infos["source_frame"].tolist() == [0, 2, 4, 6, 8]
    assert ep.actions[0].tolist() == [0, 20, 0, 1, 0, 0, 0]
    assert ep.actions[1:].tolist() == [[10, 10, 0, 0, 0, 0, 0]] * 3


def test_letterbox_maps_clicks_into_the_padded_image(tmp_path):
    folder = tmp_path / "wide"
    folder.mkdir()
    for j in range(3):
        Image.fromarray(np.full((32, 64, 3), 200, np.uint8)).save(folder / f"{j}.png")
    labels = [{"move": [0.5, 0.0], "keys": {"attack": True}, "gold": 0, "health": 1}] * 3
    path = write_labels(tmp_path / "l.jsonl", labels)
    ingest_video(folder, "wide/box-v0", path, resize="letterbox", data_dir=tmp_path, progress=False)
    ingest_video(folder, "wide/squash-v0", path, resize="squash", data_dir=tmp_path, progress=False)
    box = load_dataset("wide/box-v0", tmp_path)[0]
    assert (box.observations[:, :16] == 0).all() and (box.observations[:, 16:48] == 200).all()
    assert box.actions[0].tolist() == [10, 5, 1, 0, 0, 0, 0]  # top edge lands at image row 16
    squash = load_dataset("wide/squash-v0", tmp_path)[0]
    assert (squash.observations == 200).all() and squash.actions[0].tolist()[:2] == [10, 0]


def test_unlabeled_video(rollout, tmp_path):
    ingest_video(rollout["video"], "lane/raw-v0", data_dir=tmp_path, size=32, progress=False)
    ep = load_dataset("lane/raw-v0", tmp_path)[0]
    assert ep.observations.shape == (STEPS + 1, 32, 32, 3)
    assert not ep.infos["labeled"].any()
    assert (ep.actions == [10, 10, 0, 0, 0, 0, 0]).all() and (ep.rewards == 0).all()
    batch = SequenceView("lane/raw-v0", tmp_path).sample(4, 8, np.random.default_rng(0))
    assert not batch["labeled"].any()


def test_rewards_use_lane_formula_with_deaths():
    gold_scale, death_penalty = lane_reward_constants()
    health = [100.0, 0.0, 0.0, 620.0, 0.0]
    gold = [0, 0, 21, 21, 335]
    labels = [FrameLabel(None, (False,) * 5, g, h) for g, h in zip(gold, health, strict=True)]
    _, rewards = label_steps(labels, np.arange(5), lambda x, y: (x, y), gold_scale, death_penalty)
    assert rewards.tolist() == [
        -death_penalty,
        gold_scale * 21,
        0.0,
        gold_scale * 314 - death_penalty,
    ]
    _, rewards = label_steps(labels, np.array([0, 4]), None, gold_scale, death_penalty)
    assert rewards.tolist() == [gold_scale * 335 - 2 * death_penalty]


def _no_dataset_left(root) -> bool:
    return not [p for p in root.rglob("*") if p.is_dir() and p.name == "data"]


def test_bad_videos_are_refused(rollout, tmp_path):
    data = Path(rollout["video"]).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    garbage = tmp_path / "garbage.webm"
    garbage.write_bytes(b"not a video" * 100)
    avi = tmp_path / "cut.avi"
    writer = imageio_ffmpeg.write_frames(str(avi), (64, 64), fps=20, codec="mjpeg")
    writer.send(None)
    for frame in rollout["frames"][:60]:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    avi.write_bytes(avi.read_bytes()[: avi.stat().st_size // 2])
    out = tmp_path / "out"
    for path in (cut, garbage):
        with pytest.raises(ValueError, match="unreadable or truncated"):
            ingest_video(path, "bad/video-v0", data_dir=out, progress=False)
    with pytest.raises(ValueError, match="truncated"):
        ingest_video(avi, "bad/video-v0", data_dir=out, progress=False)
    with pytest.raises(FileNotFoundError):
        ingest_video(tmp_path / "missing.mp4", "bad/video-v0", data_dir=out, progress=False)
    deep = tmp_path / "deep"  # 16-bit frames would whiten in an 8-bit conversion
    deep.mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(deep / f"{i}.png")
    with pytest.raises(ValueError, match="pixels; save 8-bit frames"):
        ingest_video(deep, "bad/video-v0", data_dir=out, progress=False)
    for fps, source_fps in ((float("inf"), 20.0), (20.0, float("inf")), (float("nan"), None)):
        with pytest.raises(ValueError, match="positive and finite"):
            ingest_video(deep, "bad/video-v0", data_dir=out, fps=fps, source_fps=source_fps)
    assert _no_dataset_left(tmp_path)


@pytest.mark.parametrize(
    ("line", "edit", "message"),
    [
        (3, "{not json", "line 3: malformed JSON"),
        (
            5,
            {"move": [1.2, 0.5], "keys": [], "gold": 0, "health": 1},
            "line 5: 'move'.*out of range",
        ),
        (7, {"move": None, "keys": ["f"], "gold": 0, "health": 1}, "line 7: bad keys"),
        (4, {"move": None, "keys": [["q"]], "gold": 0, "health": 1}, "line 4: bad keys"),
        (2, {"move": None, "keys": {}, "gold": 0}, "line 2: missing 'health'"),
        (
            6,
            '{"move": null, "keys": [], "gold": 1' + "0" * 400 + ', "health": 1}',
            "line 6: 'gold'",
        ),
        (None, None, "has 400 labels but .* has 401 frames"),
    ],
)
def test_bad_labels_are_refused(rollout, tmp_path, line, edit, message):
    lines = [json.dumps(label) for label in rollout["label_list"]]
    if line is None:
        lines = lines[:-1]
    else:
        lines[line - 1] = edit if isinstance(edit, str) else json.dumps(edit)
    labels = tmp_path / "bad.jsonl"
    labels.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        ingest_video(rollout["video"], "bad/labels-v0", labels, data_dir=tmp_path, progress=False)
    assert _no_dataset_left(tmp_path)


def test_cli_ingest_video(rollout, tmp_path, capsys):
    argv = ["ingest-video", rollout["video"], "--labels", rollout["labels"], "--size", "48"]
    argv += ["--dataset-id", "cli/video-v0", "--data-dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_:
        cli_main(argv)
    assert exit_.value.code == 0
    assert load_dataset("cli/video-v0", tmp_path).observation_space.shape == (48, 48, 3)
    with pytest.raises(SystemExit) as exit_:
        cli_main(argv)
    assert exit_.value.code == 2 and "already exists" in capsys.readouterr().err
