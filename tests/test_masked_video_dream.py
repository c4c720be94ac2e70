"""Dream envs serving a masked video bundle (random weights), and `train-dynamics --kind
masked-video`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers Dream-v0)
from envs.dream import DreamEnv
from envs.dream_vector import DreamVectorEnv
from experiments.cli import main as cli_main
from world_models.bundle import BundleError, save_bundle
from world_models.masked_video import MaskedVideoConfig, MaskedVideoModel
from world_models.masked_video_world_model import MaskedVideoWorldModel

ACTIONS = spaces.Box(-1.0, 1.0, (2,), np.float32)
OBS = spaces.Box(0, 255, (32, 32, 1), np.uint8)  # a 16x16 model inside 32x32 frames
TINY = dict(image_size=16, patch_size=4, max_frames=4, dim=32, depth=1, num_heads=2)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def masked_video_bundle(
    path: Path, obs_space: spaces.Box = OBS, context_length: int = 2, **config
) -> Path:
    """Random weights (the head scaled up so decoded frames vary), random start contexts."""
    torch.manual_seed(0)
    model = MaskedVideoModel(MaskedVideoConfig(**{**TINY, "num_sampling_steps": 3, **config}))
    with torch.no_grad():
        model.head.weight.mul_(30)
    rng = np.random.default_rng(0)
    shape = (5, context_length)
    labeled = np.ones(shape, bool)
    labeled[:, 0] = False
    return save_bundle(
        path,
        env_id="MovingMNIST-v0",
        observation_space=obs_space,
        action_space=ACTIONS,
        models={"masked_video": model},
        contexts={
            "obs": rng.integers(0, 256, (*shape, *obs_space.shape), dtype=np.uint8),
            "action": rng.uniform(-1, 1, (*shape, 2)).astype(np.float32),
            "labeled": labeled,
        },
        sampling={"num_steps": 3, "median": False},
        horizon=6,
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return masked_video_bundle(tmp_path_factory.mktemp("mv") / "bundle")


def actions(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, 2).astype(np.float32) for _ in range(n)]


def rollout(env: DreamEnv, seed: int, steps: list[np.ndarray]) -> list[np.ndarray]:
    frames = [env.reset(seed=seed)[0]]
    frames += [env.step(a)[0] for a in steps]
    return frames


def test_check_env_spaces_and_no_heads(bundle: Path) -> None:
    env = gym.make("Dream-v0", bundle=str(bundle), render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    assert env.observation_space == OBS and env.action_space == ACTIONS
    obs, _ = env.reset(seed=0)
    assert OBS.contains(obs)
    for t in range(6):
        obs, reward, terminated, truncated, info = env.step(ACTIONS.sample())
        assert OBS.contains(obs) and reward == 0.0 and not terminated
        assert info["continue_prob"] == 1.0 and truncated == (t == 5)
    assert np.array_equal(obs[::2, ::2], obs[1::2, 1::2])  # 16x16 frames grown to 32x32
    assert len(np.unique(obs)) > 1 and set(np.unique(obs)) <= {17 * i for i in range(16)}
    assert env.render().shape == (32, 32, 3)


def test_latent_observations_are_tokens(bundle: Path) -> None:
    env = gym.make("Dream-v0", bundle=str(bundle), obs_mode="latents")
    assert env.observation_space == spaces.Box(0, 15, (16, 16), np.uint8)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.observation_space.contains(env.step(ACTIONS.sample())[0])
    check_env(env.unwrapped)


def test_seeded_determinism(bundle: Path) -> None:
    steps = actions(5)
    first = rollout(DreamEnv(bundle), 3, steps)
    again = rollout(DreamEnv(bundle), 3, steps)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    others = [rollout(DreamEnv(bundle), s, steps) for s in (4, 5)]
    assert any(not np.array_equal(a[-1], first[-1]) for a in others)


def test_vector_env_equals_single_envs_and_restarts_rows(bundle: Path) -> None:
    """Contexts of 2 frames in a window of 3: a row restarted alone holds fewer frames than
    the other and runs as its own group until both windows are full."""
    venv = gym.make_vec("Dream-v0", num_envs=2, bundle=str(bundle), horizon=50)
    assert isinstance(venv, DreamVectorEnv)
    singles = [DreamEnv(bundle, horizon=50) for _ in range(2)]
    obs, info = venv.reset(seed=10)
    for i, env in enumerate(singles):
        single_obs, single_info = env.reset(seed=10 + i)
        assert np.array_equal(obs[i], single_obs) and info["context"][i] == single_info["context"]
    steps = actions(8, seed=1)
    for t, a in enumerate(steps):
        if t == 3:
            obs, _ = venv.reset(seed=[7, None], options={"reset_mask": np.array([True, False])})
            assert np.array_equal(obs[0], singles[0].reset(seed=7)[0])
            assert len(venv.unwrapped._state.groups) == 2
        batch = np.stack([a, -a])
        obs, rewards, *_ = venv.step(batch)
        for i, env in enumerate(singles):
            assert np.array_equal(obs[i], env.step(batch[i])[0]), (t, i)
        assert not rewards.any()
    assert len(venv.unwrapped._state.groups) == 1  # merged once both windows were full


def test_bad_actions(bundle: Path) -> None:
    env = DreamEnv(bundle)
    env.reset(seed=0)
    for action, message in [
        (np.zeros(3, np.float32), r"shape \(3,\), expected \(2,\)"),
        (np.array([np.nan, 0.0]), "finite"),
        ("left", "shape"),
    ]:
        with pytest.raises(ValueError, match=message):
            env.step(action)
    venv = DreamVectorEnv(2, bundle=bundle)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"expected \(2, 2\)"):
        venv.step(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="num_steps must be a whole number >= 1, got 0"):
        DreamEnv(bundle, num_steps=0)
    assert DreamEnv(bundle, num_steps=np.int64(3)).core.world_model.num_steps == 3


def test_bad_bundles(bundle: Path, tmp_path: Path) -> None:
    wrong_size = masked_video_bundle(tmp_path / "size", spaces.Box(0, 255, (24, 24, 1), np.uint8))
    with pytest.raises(BundleError, match="sizes must divide.*train-dynamics"):
        DreamEnv(wrong_size)
    rgb = masked_video_bundle(tmp_path / "rgb", spaces.Box(0, 255, (16, 16, 3), np.uint8))
    with pytest.raises(BundleError, match="1 channel"):
        DreamEnv(rgb)
    actions_changed = tmp_path / "actions"
    shutil.copytree(bundle, actions_changed)
    config = json.loads((actions_changed / "config.json").read_text())
    config["action_space"] = {"type": "Discrete", "n": 7, "start": 0}
    (actions_changed / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match="trained for actions"):
        DreamEnv(actions_changed)
    (actions_changed / "masked_video.safetensors").rename(actions_changed / "x.safetensors")
    config["models"] = {"x": config["models"]["masked_video"]}
    (actions_changed / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match=r"lacks the model\(s\) \['dynamics', 'tokenizer'\]"):
        DreamEnv(actions_changed)


def test_replace_rows_checks_its_rows(bundle: Path) -> None:
    model = MaskedVideoModel(MaskedVideoConfig(**TINY)).eval()
    world = MaskedVideoWorldModel(model, frame_size=32)
    obs = torch.zeros(3, 2, 32, 32, 1, dtype=torch.uint8)
    state, tokens = world.start(obs, torch.zeros(3, 2, 2), torch.ones(3, 2, dtype=torch.bool))
    assert tokens.shape == (3, 2, 16, 16) and state.batch_size == 3
    with pytest.raises(ValueError, match="2 rows to replace but the new state has 3"):
        state.replace_rows(torch.tensor([0, 1]), state)
    swapped = state.replace_rows(torch.tensor([2, 0, 1]), state)
    assert swapped.batch_size == 3 and len(swapped.groups) == 1


def test_train_dynamics_masked_video_command(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    argv = ["train-dynamics", "--kind", "masked-video", "--dataset", "generated"]
    fast = ["--steps", "1", "--batch-size", "2", "--seq-len", "4", "--warmup", "1"]
    tiny = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    more = ["--context-length", "3", "--horizon", "5", "--max-speed", "2", "--speed", "1", "2"]
    with pytest.raises(SystemExit) as done:
        cli_main([*argv, "--run-dir", str(run), *fast, *tiny, *more])
    assert done.value.code == 0
    env = DreamEnv(run / "bundle")
    assert env.observation_space == gym.make("MovingMNIST-v0").observation_space
    assert env.core.horizon == 5
    assert env.core.contexts["obs"].shape[:2] == (64, 3)
    env.reset(seed=0)
    assert env.observation_space.contains(env.step(ACTIONS.sample())[0])
    for wrong, message in [
        ([*argv, "--tokenizer", "tok"], "takes no --tokenizer"),
        (["train-dynamics", "--dataset", "some/data-v0"], "needs --tokenizer"),
        (["train-dynamics", "--dataset", "d", "--tokenizer", "t", "--speed", "1", "2"], "--speed"),
    ]:
        with pytest.raises(SystemExit) as bad:
            cli_main([*wrong, "--run-dir", str(tmp_path / "bad")])
        assert bad.value.code == 2 and message in capsys.readouterr().err
