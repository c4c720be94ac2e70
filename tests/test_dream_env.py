"""Tests for the dream envs (envs.dream, envs.dream_vector) on tiny bundles with random weights."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from safetensors.torch import load_file, save_file
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from tiny_models import LANE_ACTIONS, TINY_DYNAMICS, TINY_TOKENIZER, with_sampling

from envs.dream import DreamEnv
from envs.dream_vector import DreamSB3VecEnv, DreamVectorEnv
from world_models.bundle import BundleError
from world_models.random_bundle import random_bundle


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_bundle(path: Path, obs_space: spaces.Box, action_space: gym.Space, **kw) -> Path:
    return random_bundle(
        path, obs_space, action_space, TINY_TOKENIZER, TINY_DYNAMICS, contexts=5, **kw
    )


@pytest.fixture(scope="module")
def copy_bundle(lane_bundle: Path, tmp_path_factory) -> Path:
    """`lane_bundle` with static-pixel copy (`sampling.copy_threshold`)."""
    return with_sampling(lane_bundle, tmp_path_factory.mktemp("dream") / "copy", copy_threshold=0.2)


@pytest.fixture(params=["cnn", "transformer", "cnn with static-pixel copy"])
def any_lane_bundle(
    request, lane_bundle: Path, transformer_bundle: Path, copy_bundle: Path
) -> Path:
    """The LaneSim bundle with either tokenizer, or with static-pixel copy."""
    return {"cnn": lane_bundle, "transformer": transformer_bundle}.get(request.param, copy_bundle)


@pytest.fixture(scope="module")
def box_bundle(tmp_path_factory) -> Path:
    """A Moving MNIST-like bundle: 1-channel 16x16 frames, Box(-1, 1, (2,)) actions."""
    root = tmp_path_factory.mktemp("dream")
    box = spaces.Box(-1.0, 1.0, (2,), np.float32)
    return tiny_bundle(root / "box", spaces.Box(0, 255, (16, 16, 1), np.uint8), box, horizon=8)


def rollout(env: DreamEnv, seed: int, actions: list) -> list[tuple]:
    obs, _ = env.reset(seed=seed)
    out = [(obs, 0.0, False, False)]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append((obs, reward, terminated, truncated))
    return out


def same(a: list[tuple], b: list[tuple]) -> bool:
    """Whether two rollouts are identical: observations, rewards and end flags."""
    return all(np.array_equal(x[0], y[0]) and x[1:] == y[1:] for x, y in zip(a, b, strict=True))


def test_spaces_are_the_bundles(lane_bundle: Path) -> None:
    env = DreamEnv(lane_bundle)
    assert env.action_space == LANE_ACTIONS
    assert env.observation_space == spaces.Box(0, 255, (16, 16, 3), np.uint8)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert 0 <= info["context"] < 5
    latent_env = DreamEnv(lane_bundle, obs_mode="latents", render_mode="rgb_array")
    assert latent_env.observation_space == spaces.Box(-1.0, 1.0, (16, 4), np.float32)
    obs, _ = latent_env.reset(seed=0)
    assert latent_env.observation_space.contains(obs)
    assert latent_env.observation_space.contains(latent_env.step(LANE_ACTIONS.sample())[0])
    assert latent_env.render().shape == (16, 16, 3)
    assert env.render() is None  # no render mode: Gymnasium's convention


def test_reset_returns_a_real_start_frame(lane_bundle: Path) -> None:
    from world_models.bundle import load_bundle

    contexts = load_bundle(lane_bundle).contexts["obs"].numpy()
    env = DreamEnv(lane_bundle)
    obs, info = env.reset(seed=3)
    assert np.array_equal(obs, contexts[info["context"], -1])
    obs, info = env.reset(options={"context": 2})
    assert info["context"] == 2 and np.array_equal(obs, contexts[2, -1])
    with pytest.raises(ValueError, match=r"options\['context'\] must be in \[0, 5\)"):
        env.reset(options={"context": 5})
    for bad in (None, [1, 2], "a", 1.5, True, 2**70, "²"):
        with pytest.raises(ValueError, match=r"options\['context'\] must be a whole number"):
            env.reset(options={"context": bad})
    for same in (np.array(2), torch.tensor(2), 2.0, "2"):
        assert env.reset(options={"context": same})[1]["context"] == 2


def test_reset_from_real_frames(lane_bundle: Path) -> None:
    env = DreamEnv(lane_bundle, render_mode="rgb_array")
    frames = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    obs, info = env.reset(seed=0, options={"frames": frames[-1]})
    assert info["context"] == -1 and np.array_equal(obs, frames[-1])
    assert env.observation_space.contains(env.step(LANE_ACTIONS.sample())[0])
    actions = np.stack([LANE_ACTIONS.sample() for _ in range(3)])
    with_actions = env.reset(seed=0, options={"frames": frames, "actions": actions})[0]
    assert np.array_equal(with_actions, frames[-1])
    with pytest.raises(
        ValueError, match=r"start frames must be uint8 of shape \(T0, \*\(16, 16, 3\)\)"
    ):
        env.reset(options={"frames": frames[..., :1]})
    with pytest.raises(ValueError, match="outside the action space"):
        env.reset(options={"frames": frames, "actions": actions + 30})
    with pytest.raises(ValueError, match="T0 >= 1"):
        env.reset(options={"frames": frames[:0]})
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['contxt'\]"):
        env.reset(options={"contxt": 3})
    mine = frames.copy()
    obs = env.reset(options={"frames": mine})[0]
    mine[:] = 0  # the env keeps its own copy of the start frames
    assert np.array_equal(obs, frames[-1]) and np.array_equal(env.render(), frames[-1])
    obs[:] = 7  # and the observation it returned is the caller's
    assert np.array_equal(env.render(), frames[-1])


def test_vector_reset_takes_the_single_envs_context_option(lane_bundle: Path) -> None:
    venv = DreamVectorEnv(2, bundle=lane_bundle)
    env = DreamEnv(lane_bundle)
    obs, info = venv.reset(seed=0, options={"context": 3})
    assert list(info["context"]) == [3, 3]
    assert np.array_equal(obs[0], env.reset(seed=0, options={"context": 3})[0])
    _, info = venv.reset(seed=0, options={"context": np.array([1, 2])})
    assert list(info["context"]) == [1, 2]
    assert list(venv.reset(options={"context": [1.0, 2.0]})[1]["context"]) == [1, 2]
    for bad in (10_000, [1, 2, 3], [[1], [2]], None, [0.5, 1]):
        with pytest.raises(ValueError, match=r"options\['context'\] must be an index"):
            venv.reset(options={"context": bad})
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['frames'\]"):
        venv.reset(options={"frames": obs})


@pytest.fixture(scope="module")
def dream_id() -> str:
    """A test id registered like `Dream-v0` (envs/__init__.py registers the real ones)."""
    if "DreamTest-v0" not in gym.registry:
        gym.register(
            "DreamTest-v0",
            entry_point="envs.dream:DreamEnv",
            vector_entry_point="envs.dream_vector:DreamVectorEnv",
        )
    return "DreamTest-v0"


def test_gymnasium_and_sb3_check_env(dream_id: str, lane_bundle: Path, box_bundle: Path) -> None:
    for bundle in (lane_bundle, box_bundle):
        env = gym.make(dream_id, bundle=str(bundle), render_mode="rgb_array")
        gym_check_env(env.unwrapped, skip_render_check=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SB3 warns that 16x16 images are small for a CNN
            sb3_check_env(DreamEnv(bundle))


def test_gym_make_and_make_vec(dream_id: str, lane_bundle: Path) -> None:
    env = gym.make(dream_id, bundle=str(lane_bundle), device="cpu")
    assert env.action_space == LANE_ACTIONS
    env.reset(seed=0)
    env.step(LANE_ACTIONS.sample())
    venv = gym.make_vec(dream_id, num_envs=3, bundle=str(lane_bundle))
    assert isinstance(venv, DreamVectorEnv)
    assert venv.observation_space.shape == (3, 16, 16, 3)
    assert venv.reset(seed=0)[0].shape == (3, 16, 16, 3)


def test_seeded_determinism(lane_bundle: Path) -> None:
    LANE_ACTIONS.seed(0)
    actions = [LANE_ACTIONS.sample() for _ in range(6)]
    first = rollout(DreamEnv(lane_bundle), 7, actions)
    second = rollout(DreamEnv(lane_bundle), 7, actions)
    other = rollout(DreamEnv(lane_bundle), 8, actions)
    assert same(first, second)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=True))
    assert len({r[1] for r in first[1:]}) > 1  # rewards vary from step to step
    assert first[-1][3] is False and rollout(DreamEnv(lane_bundle), 7, actions * 2)[8][3] is True


def test_sampled_termination_follows_continue_probability(lane_bundle: Path) -> None:
    venv = DreamVectorEnv(64, bundle=lane_bundle, termination="sample", horizon=100)
    venv.reset(seed=0)
    probs, ends = [], []
    for _ in range(5):
        _, _, terminated, _, info = venv.step(venv.action_space.sample())
        stepped = info["_continue_prob"]
        probs.append(info["continue_prob"][stepped])
        ends.append(terminated[stepped])
    probs, ends = np.concatenate(probs), np.concatenate(ends)
    assert len(ends) > 200
    assert abs(ends.mean() - (1 - probs.mean())) < 0.1  # about 3 standard errors
    single = DreamEnv(lane_bundle, termination="sample")
    LANE_ACTIONS.seed(0)
    actions = [LANE_ACTIONS.sample() for _ in range(8)]
    assert same(rollout(single, 3, actions), rollout(single, 3, actions))
    never = DreamEnv(lane_bundle, continue_threshold=0.0)
    never.reset(seed=0)
    assert not any(never.step(LANE_ACTIONS.sample())[2] for _ in range(8))


def test_vector_env_equals_single_envs(any_lane_bundle: Path) -> None:
    """Sampled terminations end rows at different steps, so rows restart one by one (spliced
    into the batch); each single env is reset when it ends, as NEXT_STEP autoreset does."""
    n = 3
    venv = DreamVectorEnv(n, bundle=any_lane_bundle, termination="sample")
    singles = [DreamEnv(any_lane_bundle, termination="sample") for _ in range(n)]
    assert venv.observation_space == gym.vector.utils.batch_space(singles[0].observation_space, n)
    assert venv.action_space.shape == (n, 7)
    obs, info = venv.reset(seed=10)
    for i, env in enumerate(singles):
        single_obs, single_info = env.reset(seed=10 + i)
        assert np.array_equal(obs[i], single_obs)
        assert info["context"][i] == single_info["context"]
    venv.action_space.seed(0)
    done, ends = np.zeros(n, bool), 0
    for _ in range(12):
        actions = venv.action_space.sample()
        obs, rewards, terminated, truncated, _ = venv.step(actions)
        for i, env in enumerate(singles):
            expected = (env.reset()[0], 0.0, False, False) if done[i] else env.step(actions[i])[:4]
            assert np.abs(obs[i].astype(int) - expected[0]).max() <= 1
            assert rewards[i] == pytest.approx(expected[1], abs=1e-4)
            assert (terminated[i], truncated[i]) == expected[2:]
        done = terminated | truncated
        ends += done.sum()
    assert ends >= 3  # several episodes ended (and restarted) along the way


def test_next_step_autoreset(lane_bundle: Path) -> None:
    venv = DreamVectorEnv(2, bundle=lane_bundle, horizon=2, continue_threshold=0.0)
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    venv.reset(seed=0)
    actions = np.zeros((2, 7), np.int64)
    venv.step(actions)
    _, _, terminated, truncated, _ = venv.step(actions)
    assert truncated.all() and not terminated.any()
    obs, rewards, terminated, truncated, info = venv.step(actions)  # resets, action ignored
    contexts = venv.core.contexts["obs"].numpy()
    assert np.array_equal(obs, contexts[info["context"], -1])
    assert not rewards.any() and not terminated.any() and not truncated.any()
    assert info["_context"].all() and "continue_prob" not in info
    _, rewards, _, truncated, info = venv.step(actions)  # a fresh episode: step 1 of 2
    assert info["_continue_prob"].all() and not truncated.any() and rewards.all()


def test_partial_reset_leaves_other_rows_alone(any_lane_bundle: Path) -> None:
    """Restarting row 0 splices a fresh (shorter) cache into the batch; row 1 must go on exactly
    as a single env that was never reset, row 0 as a single env freshly reset."""
    bundle = any_lane_bundle
    venv = DreamVectorEnv(2, bundle=bundle, continue_threshold=0.0, horizon=100)
    keep, fresh = DreamEnv(bundle, horizon=100), DreamEnv(bundle, horizon=100)
    venv.reset(seed=[1, 2])
    keep.reset(seed=2)
    LANE_ACTIONS.seed(1)
    for _ in range(3):
        a = np.stack([LANE_ACTIONS.sample(), LANE_ACTIONS.sample()])
        venv.step(a)
        keep.step(a[1])
    obs, info = venv.reset(seed=[5, None], options={"reset_mask": np.array([True, False])})
    assert np.array_equal(obs[0], fresh.reset(seed=5)[0])
    assert info["_context"].tolist() == [True, False]
    for _ in range(4):
        a = np.stack([LANE_ACTIONS.sample(), LANE_ACTIONS.sample()])
        obs, rewards, *_ = venv.step(a)
        for row, env in ((0, fresh), (1, keep)):
            s_obs, s_reward, *_ = env.step(a[row])
            assert np.abs(obs[row].astype(int) - s_obs).max() <= 1
            assert rewards[row] == pytest.approx(s_reward, abs=1e-4)


def test_transformer_tokenizer_decodes_dreams_in_context(transformer_bundle: Path) -> None:
    """Each dreamed frame is decoded with the rollout's earlier latents, as the tokenizer's
    block-causal decoder reads a whole window; decoded alone it would come out different."""
    env = DreamEnv(transformer_bundle)
    model = env.core.world_model
    obs, action, labeled = env.core.context([0, 1])
    state, latents = model.start(obs, action, labeled)
    window = [latents]
    for _ in range(3):  # 4 context frames + 3 dreamed ones fit the decoder's 7
        state, new, _, _ = model.step(state, action[:, -1])
        window.append(new[:, None])
    frames = model.decode(new, state)
    whole = model.tokenizer.decode(torch.cat(window, 1))[:, -1].clamp(0, 1)
    torch.testing.assert_close(frames, whole, atol=1e-5, rtol=0)
    assert (frames - model.decode(new)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="holds 2 rollouts but got 1 latents"):
        model.decode(new[:1], state)


def test_same_step_autoreset_and_sb3_adapter(lane_bundle: Path) -> None:
    venv = DreamSB3VecEnv(3, bundle=lane_bundle, horizon=2, continue_threshold=0.0)
    venv.seed(4)
    obs = venv.reset()
    assert obs.shape == (3, 16, 16, 3) and len(venv.reset_infos) == 3
    actions = np.zeros((3, 7), np.int64)
    last, _, dones, _ = venv.step(actions)
    assert not dones.any()
    obs, _, dones, infos = venv.step(actions)
    assert dones.all()
    contexts = venv.venv.core.contexts["obs"].numpy()
    for i, info in enumerate(infos):
        assert info["TimeLimit.truncated"]
        assert info["terminal_observation"].shape == (16, 16, 3)
        assert not np.array_equal(info["terminal_observation"], obs[i])
        assert any(np.array_equal(obs[i], c) for c in contexts[:, -1])  # the reset frame
    assert venv.get_attr("render_mode") == [None] * 3
    assert len(venv.get_images()) == 3
    with pytest.raises(ValueError, match="applies to all envs"):
        venv.set_attr("render_mode", "rgb_array", indices=[0])
    with pytest.raises(ValueError, match="applies to all envs"):
        venv.env_method("reset", indices=[1])
    venv.set_options({"context": 4})  # SB3's per-env reset options reach the dream envs
    venv.reset()
    assert [info["context"] for info in venv.reset_infos] == [4, 4, 4]


def test_sb3_ppo_trains_on_the_vec_env(lane_bundle: Path) -> None:
    venv = DreamSB3VecEnv(4, bundle=lane_bundle)
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=32,
        batch_size=64,
        n_epochs=1,
        policy_kwargs=dict(net_arch=[16]),
        seed=0,
        device="cpu",
    )
    model.learn(total_timesteps=128)
    assert model.num_timesteps == 128


def test_box_actions_are_clipped_and_frames_rendered_rgb(box_bundle: Path) -> None:
    env = DreamEnv(box_bundle, render_mode="rgb_array")
    env.reset(seed=0)
    clipped = env.step(np.array([1.0, -1.0], np.float32))
    env.reset(seed=0)
    beyond = env.step(np.array([7.0, -3.0], np.float32))
    assert np.array_equal(clipped[0], beyond[0]) and clipped[1] == beyond[1]
    frame = env.render()
    assert frame.shape == (16, 16, 3) and frame.dtype == np.uint8
    assert np.array_equal(frame[..., 0], beyond[0][..., 0])
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan, 0.0], np.float32))


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.array([21, 0, 0, 0, 0, 0, 0]), "outside the action space"),
        (np.array([-1, 0, 0, 0, 0, 0, 0]), "outside the action space"),
        (np.array([0, 0, 0]), r"shape \(3,\), expected \(7,\)"),
        (np.array([0.5, 0, 0, 0, 0, 0, 0]), "must be integers"),
        ("left", "shape"),
    ],
)
def test_bad_actions(lane_bundle: Path, action, message: str) -> None:
    env = DreamEnv(lane_bundle)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_bad_vector_actions(lane_bundle: Path) -> None:
    venv = DreamVectorEnv(2, bundle=lane_bundle)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"expected \(2, 7\)"):
        venv.step(np.zeros(7, np.int64))


def _corrupt(path: Path, case: str) -> None:
    if case == "missing weights":
        (path / "dynamics.safetensors").unlink()
    elif case == "corrupt weights":
        (path / "tokenizer.safetensors").write_bytes(b"not safetensors at all")
    elif case == "weights mismatch":
        config = json.loads((path / "config.json").read_text())
        config["models"]["dynamics"]["config"]["dim"] = 64
        (path / "config.json").write_text(json.dumps(config))
    elif case == "garbage config":
        (path / "config.json").write_text("{ this is not json")
    elif case == "no horizon":
        config = json.loads((path / "config.json").read_text())
        del config["horizon"]
        (path / "config.json").write_text(json.dumps(config))
    elif case in ("models not an object", "sampling not an object"):
        config = json.loads((path / "config.json").read_text())
        config[case.split()[0]] = [1]
        (path / "config.json").write_text(json.dumps(config))
    elif case == "action space mismatch":
        config = json.loads((path / "config.json").read_text())
        config["action_space"] = {"type": "Discrete", "n": 7, "start": 0}
        (path / "config.json").write_text(json.dumps(config))
    elif case == "copy_threshold 1.5":
        config = json.loads((path / "config.json").read_text())
        config["sampling"]["copy_threshold"] = 1.5
        (path / "config.json").write_text(json.dumps(config))
    elif case == "render_fps 0":
        config = json.loads((path / "config.json").read_text())
        config["render_fps"] = 0
        (path / "config.json").write_text(json.dumps(config))
    elif case == "zero heads":
        config = json.loads((path / "config.json").read_text())
        config["models"]["dynamics"]["config"]["num_heads"] = 0
        (path / "config.json").write_text(json.dumps(config))
    elif case in ("contexts short of actions", "context action out of range"):
        contexts = load_file(path / "contexts.safetensors")
        if case == "contexts short of actions":
            contexts["action"] = contexts["action"][:-1].clone()
        else:
            contexts["labeled"] = torch.ones_like(contexts["labeled"])
            contexts["action"] = torch.full_like(contexts["action"], 99)
        save_file(contexts, path / "contexts.safetensors")


@pytest.mark.parametrize(
    ("case", "names"),
    [
        ("missing weights", "dynamics.safetensors"),
        ("corrupt weights", "tokenizer.safetensors"),
        ("weights mismatch", "dynamics.safetensors"),
        ("garbage config", "config.json"),
        ("no horizon", "config.json"),
        ("action space mismatch", "config.json"),
        ("models not an object", "config.json"),
        ("sampling not an object", "config.json"),
        ("render_fps 0", "config.json"),
        ("copy_threshold 1.5", "copy_threshold is a change in [0, 1] pixel units"),
        ("zero heads", "num_heads must be a whole number >= 1"),
        ("contexts short of actions", "contexts.safetensors"),
        ("context action out of range", "contexts.safetensors"),
    ],
)
def test_bad_bundles(lane_bundle: Path, tmp_path: Path, case: str, names: str) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(lane_bundle, bad)
    _corrupt(bad, case)
    with pytest.raises(BundleError, match="train-dynamics") as err:
        DreamEnv(bad)
    assert names in str(err.value) and str(bad) in str(err.value)


def test_bad_settings(lane_bundle: Path) -> None:
    for kwargs, message in [
        (dict(num_steps=3), "num_steps must be a power of two between 1 and k_max=4"),
        (dict(num_steps=8), "num_steps must be a power of two"),
        (dict(obs_mode="rgb"), "obs_mode must be one of"),
        (dict(termination="never"), "termination must be one of"),
        (dict(continue_threshold=1.5), r"continue_threshold must be in \[0, 1\]"),
        (dict(num_steps=0), "num_steps must be a whole number >= 1"),
        (dict(num_steps=2.5), "num_steps must be a whole number >= 1"),
        (dict(num_steps="abc"), "num_steps must be a whole number >= 1, got 'abc'"),
        (dict(horizon=0), "horizon must be a whole number >= 1"),
        (dict(horizon="abc"), "horizon must be a whole number >= 1, got 'abc'"),
        (dict(render_mode="human"), "render_mode must be None or 'rgb_array'"),
        (dict(device="banana"), "device='banana' is not a torch device"),
        (dict(device="meta"), "a dream env runs on 'cpu', 'cuda' or 'mps'"),
    ]:
        with pytest.raises(ValueError, match=message):
            DreamEnv(lane_bundle, **kwargs)
    for steps in (np.int64(2), 2.0, "2"):  # whole numbers in any form a caller may hold
        assert DreamEnv(lane_bundle, num_steps=steps).core.world_model.num_steps == 2
    env = DreamEnv(lane_bundle, num_steps=1)
    env.reset(seed=0)
    assert env.observation_space.contains(env.step(LANE_ACTIONS.sample())[0])


def test_missing_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"not found.*train-dynamics"):
        DreamEnv(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="needs a world-model bundle"):
        DreamEnv()
    with pytest.raises(BundleError, match="not found"):
        DreamVectorEnv(2, bundle=tmp_path / "nowhere")


def test_compiled_dream_steps_as_the_eager_one(lane_bundle: Path, monkeypatch) -> None:
    actions = [LANE_ACTIONS.sample() for _ in range(10)]  # the cache fills its window
    runs = []
    for compile in (False, True):
        env = DreamEnv(lane_bundle, compile=compile)
        obs = [env.reset(seed=3)[0]]
        rewards = []
        for action in actions:
            o, r, terminated, truncated, _ = env.step(action)
            obs.append(o)
            rewards.append(r)
            if terminated or truncated:
                obs.append(env.reset()[0])
        runs.append((np.stack(obs).astype(int), np.array(rewards)))
    (eager, eager_r), (compiled, compiled_r) = runs
    assert eager.shape == compiled.shape
    assert np.abs(eager - compiled).max() <= 2  # float rounding: a grey level or two
    np.testing.assert_allclose(eager_r, compiled_r, atol=1e-3)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="needs a C\\+\\+ compiler"):
        DreamEnv(lane_bundle, compile=True)
