"""Agents: evaluation statistics and outputs, SB3 in a dream env, imagination, the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from tiny_models import TINY_DYNAMICS, TINY_TOKENIZER

from agents.diffusion_policy import DiffusionPolicy, DiffusionPolicyConfig, save_policy
from agents.evaluation import evaluate_policy, format_results, load_agent, mean_ci, wilson_ci
from agents.obs_encoders import obs_spec
from data_collection.policies import make_policy
from world_models.action_encoder import space_to_spec
from world_models.random_bundle import random_bundle

IMAGE = spaces.Box(0, 255, (16, 16, 3), np.uint8)
ACTIONS = spaces.Discrete(3)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dream") / "bundle"
    return random_bundle(path, IMAGE, ACTIONS, TINY_TOKENIZER, TINY_DYNAMICS, contexts=4, horizon=6)


def test_mean_ci_known_values():
    mean, low, high = mean_ci([1.0, 2.0, 3.0, 4.0])
    half = 3.182446 * np.std([1, 2, 3, 4], ddof=1) / 2  # t(3) quantile, sd 1.2910, n = 4
    assert mean == pytest.approx(2.5)
    assert (low, high) == pytest.approx((2.5 - half, 2.5 + half))
    assert half == pytest.approx(2.0543, abs=1e-4)
    mean, low, high = mean_ci([7.0])  # one value: no interval
    assert mean == 7.0 and np.isnan(low) and np.isnan(high)
    with pytest.raises(ValueError):
        mean_ci([])


def test_wilson_ci_known_values():
    rate, low, high = wilson_ci(8, 10)  # textbook: 0.8 in [0.4902, 0.9433]
    assert rate == 0.8
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    rate, low, high = wilson_ci(0, 20)
    assert rate == 0.0 and low == 0.0 and high == pytest.approx(0.1611, abs=1e-4)
    rate, low, high = wilson_ci(100, 100)
    assert rate == 1.0 and high == 1.0 and low == pytest.approx(0.9630, abs=1e-4)
    with pytest.raises(ValueError):
        wilson_ci(3, 2)


def test_evaluate_expert_writes_results_and_videos(tmp_path):
    env_id = "MiniGridPixels-Empty-8x8-v0"
    results = evaluate_policy(
        make_policy("expert", env_id), env_id, episodes=3, out_dir=tmp_path, progress=False
    )
    assert results["success_rate"] == 1.0 and results["successes"] == [True] * 3
    assert results["success_ci95"][1] == 1.0 and results["success_ci95"][0] < 1.0
    assert results["mean_return"] > 0 and len(results["returns"]) == 3
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["episodes"] == 3 and saved["env_id"] == env_id
    for name in ("best.mp4", "worst.mp4"):
        assert (tmp_path / name).stat().st_size > 0


def test_evaluate_random_counts_failures(tmp_path):
    env_id = "MiniGridPixels-DoorKey-8x8-v0"
    results = evaluate_policy(
        make_policy("random", env_id), env_id, episodes=2, max_steps=20, progress=False
    )
    assert results["successes"] == [False, False] and results["success_rate"] == 0.0
    assert results["lengths"] == [20, 20]
    one = evaluate_policy(
        make_policy("random", env_id), env_id, episodes=1, max_steps=5, out_dir=tmp_path
    )
    assert one["return_ci95"] is None  # no interval from one episode
    assert json.loads((tmp_path / "results.json").read_text())["return_ci95"] is None
    assert format_results(one).endswith("return 0.000")


def test_evaluate_reports_lanesim_gold():
    results = evaluate_policy(
        make_policy("expert", "LaneSim-v0"), "LaneSim-v0", episodes=2, max_steps=300, progress=False
    )
    assert len(results["golds"]) == 2 and results["mean_gold"] > 0
    assert results["gold_ci95"][0] <= results["mean_gold"] <= results["gold_ci95"][1]
    assert "gold" in format_results(results)


def test_sb3_ppo_trains_in_dream_env(bundle, tmp_path, monkeypatch):
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.torch_layers import FlattenExtractor
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agents import baselines
    from agents.baselines import train_sb3
    from experiments.policy_loading import load_policy

    saved_at = []
    save = baselines.save_atomic

    def save_and_keep_128(model, path):
        saved_at.append(model.num_timesteps)
        save(model, path)
        if model.num_timesteps == 128:
            shutil.copy(path, tmp_path / "at-128.zip")

    monkeypatch.setattr(baselines, "save_atomic", save_and_keep_128)

    # NatureCNN needs 36x36 images or more: a linear extractor keeps the frames tiny
    policy_kwargs = dict(features_extractor_class=FlattenExtractor)
    overrides = dict(n_steps=32, batch_size=32, n_epochs=1, policy_kwargs=policy_kwargs)
    kw = dict(bundle=bundle, num_envs=2, overrides=overrides, ckpt_every=64)
    with pytest.raises(FileNotFoundError, match="not found"):
        train_sb3("ppo", "Dream-v0", tmp_path, steps=256, resume=True, **kw)
    path = train_sb3("ppo", "Dream-v0", tmp_path, steps=256, **kw)
    assert path.is_file() and (tmp_path / "run.json").is_file()
    assert saved_at == [64, 128, 192, 256, 256]  # every rollout (64 steps), then the end
    # resuming a run continues from its checkpoint to the new total; here the run was killed
    # at 256 with its checkpoint at 128, and its TensorBoard points past 128 are hidden
    path.unlink()
    shutil.copy(tmp_path / "at-128.zip", tmp_path / "checkpoints" / "latest.zip")
    path = train_sb3("ppo", "Dream-v0", tmp_path, steps=384, resume=True, **kw)
    assert PPO.load(str(path)).num_timesteps == 384
    assert [p.name for p in (tmp_path / "tensorboard").glob("PPO_*")] == ["PPO_1"]
    events = EventAccumulator(str(tmp_path / "tensorboard" / "PPO_1"))
    events.Reload()
    assert [e.step for e in events.Scalars("time/fps")] == [64, 128, 192, 256, 320, 384]
    with pytest.raises(ValueError, match="algo='ppo'"):
        train_sb3("a2c", "Dream-v0", tmp_path, steps=512, resume=True, **kw)
    policy = load_policy(f"ppo:{path}", "Dream-v0")
    action = policy.act(np.zeros(IMAGE.shape, np.uint8))
    assert ACTIONS.contains(int(action))
    # sampled actions: seeded per episode, and torch's global stream is left alone
    sampler = load_policy(f"ppo:{path}", "Dream-v0", sample=True)
    env = gym.make("Dream-v0", bundle=bundle)
    runs = []
    for _ in range(2):
        sampler.reset(env, seed=3)
        torch.manual_seed(0)
        runs.append([int(sampler.act(np.full(IMAGE.shape, i, np.uint8))) for i in range(40)])
        assert torch.rand(()) == torch.rand((), generator=torch.Generator().manual_seed(0))
    assert runs[0] == runs[1] and len(set(runs[0])) > 1
    with pytest.raises(ValueError, match="temperature 0 .* or 1"):
        load_agent(f"ppo:{path}", "Dream-v0", temperature=0.5)


class RecordingModel:
    """Stands in for an SB3 model: records what it is shown, always answers action 0."""

    def __init__(self, observation_space: spaces.Space) -> None:
        self.observation_space = observation_space
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)  # Moving MNIST's
        self.seen: list[np.ndarray] = []

    def predict(self, obs, deterministic=True):
        self.seen.append(obs.copy())
        return np.zeros(2, np.float32), None


def test_sb3_settings_checks_take_what_sb3_takes():
    from agents.baselines import check_algo_kwargs

    check_algo_kwargs("ppo", {"policy_kwargs": None, "frame_stack": 4, "n_steps": 8})
    for bad, message in [
        ({"frame_stack": 0}, "frame_stack must be an integer >= 1"),
        ({"n_steps": 2.5}, "n_steps must be an integer >= 1"),
        ({"policy_kwargs": []}, "policy_kwargs must be a dict"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_algo_kwargs("ppo", bad)


def test_scoring_a_frame_stacked_agent_shows_it_the_stack_training_showed():
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

    from experiments.policy_loading import SB3Policy

    def make():
        return gym.make("MovingMNIST-v0", image_size=16)

    venv = VecFrameStack(DummyVecEnv([make]), 3, channels_order="last")
    venv.seed(5)
    trained_on = [venv.reset()[0]]
    env = make()
    obs, _ = env.reset(seed=5)
    policy = SB3Policy(RecordingModel(venv.observation_space))
    policy.reset(env, seed=5)
    for _ in range(4):
        action = policy.act(obs)
        trained_on.append(venv.step(action[None])[0][0])
        obs = env.step(action)[0]
    assert policy.model.seen[0].shape == (16, 16, 3) and not policy.model.seen[0][..., :2].any()
    for shown, stacked in zip(policy.model.seen, trained_on[:-1], strict=True):
        np.testing.assert_array_equal(shown, stacked)
    wrong = SB3Policy(RecordingModel(spaces.Box(0, 255, (16, 16, 2), np.uint8)))
    with pytest.raises(ValueError, match="not a stack of this env's"):
        wrong.reset(gym.make("MovingMNIST-v0", image_size=32), seed=0)
    with pytest.raises(ValueError, match=r"acts in Box.*but LaneSim-v0 acts in MultiDiscrete"):
        policy.reset(gym.make("LaneSim-v0"), seed=0)


def test_frame_stack_setting_is_recorded_checked_on_resume_and_needs_images(bundle, tmp_path):
    from stable_baselines3 import PPO
    from stable_baselines3.common.torch_layers import FlattenExtractor

    from agents.baselines import make_vec_env, train_sb3

    overrides = dict(n_steps=16, batch_size=32, n_epochs=1, frame_stack=2)
    overrides["policy_kwargs"] = dict(features_extractor_class=FlattenExtractor)
    kw = dict(bundle=bundle, num_envs=2, ckpt_every=32)
    path = train_sb3("ppo", "Dream-v0", tmp_path, steps=32, overrides=overrides, **kw)
    assert json.loads((tmp_path / "run.json").read_text())["frame_stack"] == 2
    assert int(np.prod(PPO.load(str(path)).observation_space.shape)) == 2 * int(
        np.prod(IMAGE.shape)
    )
    with pytest.raises(ValueError, match="frame_stack=2"):
        train_sb3(
            "ppo",
            "Dream-v0",
            tmp_path,
            steps=64,
            overrides={**overrides, "frame_stack": 3},
            resume=True,
            **kw,
        )
    with pytest.raises(ValueError, match="stacks image channels"):
        make_vec_env("MiniGridSymbolic-Empty-8x8-v0", 1, frame_stack=2)


def tiny_policy(**kw) -> DiffusionPolicy:
    torch.manual_seed(0)
    settings = dict(horizon=2, dim=16, depth=1, num_heads=2, steps=2, execute=1) | kw
    cfg = DiffusionPolicyConfig(
        obs_spec=obs_spec(IMAGE), action_spec=space_to_spec(ACTIONS), **settings
    )
    return DiffusionPolicy(cfg)


@pytest.mark.parametrize("execute, rollout_steps", [(1, 4), (2, 3)])
def test_imagination_updates_policy(bundle, execute, rollout_steps):
    """(2, 3): every rollout ends in the middle of an action chunk."""
    from gymnasium.vector import AutoresetMode

    from agents.imagination import Imagination, ImaginationConfig
    from envs.dream_vector import DreamVectorEnv

    policy = tiny_policy(execute=execute)
    before = [p.detach().clone() for p in policy.parameters()]
    venv = DreamVectorEnv(2, bundle=bundle, autoreset_mode=AutoresetMode.SAME_STEP)
    cfg = ImaginationConfig(num_envs=2, rollout_steps=rollout_steps, lr=1e-3, value_dim=16)
    loop = Imagination(policy, venv, cfg)
    try:
        metrics = [loop.update(loop.rollout()) for _ in range(2)]
    finally:
        venv.close()
    assert all(np.isfinite(m["kl"]) and m["kl"] >= -1e-6 for m in metrics)
    changed = [not torch.equal(a, b) for a, b in zip(before, loop.policy.parameters(), strict=True)]
    assert any(changed)


def test_imagination_resumes_from_checkpoint(bundle, tmp_path):
    from gymnasium.vector import AutoresetMode

    from agents.diffusion_policy import load_diffusion_policy
    from agents.imagination import Imagination, ImaginationConfig, improve_in_dream
    from envs.dream_vector import DreamVectorEnv
    from world_models.checkpoint import latest_checkpoint

    init = save_policy(tiny_policy(), tmp_path / "bc")
    settings = dict(rollout_steps=2, value_dim=16, lr=1e-3)
    kw = dict(bundle=bundle, num_envs=2, overrides=settings, ckpt_every=1)
    run = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="not found"):
        improve_in_dream(init, "Dream-v0", run, steps=2, resume=True, **kw)
    improved = improve_in_dream(init, "Dream-v0", run, steps=2, **kw)
    assert latest_checkpoint(run).name == "step-00000002"

    venv = DreamVectorEnv(2, bundle=bundle, autoreset_mode=AutoresetMode.SAME_STEP)
    try:
        loop = Imagination(load_diffusion_policy(init), venv, ImaginationConfig(**settings))
        assert loop.resume(run) and loop.iteration == 2
        saved = load_diffusion_policy(improved).state_dict()
        start = load_diffusion_policy(init).state_dict()
        resumed = loop.policy.state_dict()
        assert all(torch.equal(resumed[k], saved[k]) for k in saved)
        assert any(not torch.equal(resumed[k], start[k]) for k in start)
    finally:
        venv.close()
    improve_in_dream(init, "Dream-v0", run, steps=3, resume=True, **kw)
    assert latest_checkpoint(run).name == "step-00000003"
    with pytest.raises(ValueError, match="init=.*bc"):
        improve_in_dream(tmp_path / "other", "Dream-v0", run, steps=4, resume=True, **kw)


def test_imagination_seed_decides_the_run(bundle, tmp_path):
    from agents.diffusion_policy import load_diffusion_policy
    from agents.imagination import improve_in_dream

    init = save_policy(tiny_policy(), tmp_path / "bc")
    settings = dict(rollout_steps=3, value_dim=16, lr=1e-2)
    kw = dict(steps=2, bundle=bundle, num_envs=2, overrides=settings)
    weights = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        folder = improve_in_dream(init, "Dream-v0", tmp_path / name, seed=seed, **kw)
        weights[name] = load_diffusion_policy(folder).state_dict()

    def same(x: str, y: str) -> bool:
        return all(torch.equal(weights[x][k], weights[y][k]) for k in weights[x])

    assert same("a", "b") and not same("a", "c")


def test_imagination_horizon_setting_sets_imagined_episode_length(bundle, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agents.imagination import improve_in_dream

    init = save_policy(tiny_policy(), tmp_path / "bc")
    ended = {}
    for horizon in (0, 2):  # 0: the bundle's 6 steps, longer than the 4-step rollout
        run = tmp_path / f"run-{horizon}"
        settings = dict(rollout_steps=4, value_dim=16, horizon=horizon)
        improve_in_dream(
            init, "Dream-v0", run, steps=1, bundle=bundle, num_envs=2, overrides=settings
        )
        events = EventAccumulator(str(run / "tensorboard"))
        events.Reload()
        ended[horizon] = "imagination/imagined_return" in events.Tags()["scalars"]
    assert ended == {0: False, 2: True}


def test_imagination_refuses_other_actions_a_dream_eval_env_and_next_step_autoreset(
    bundle, tmp_path
):
    from agents.imagination import Imagination, ImaginationConfig, improve_in_dream
    from envs.dream_vector import DreamVectorEnv

    box = DiffusionPolicy(
        DiffusionPolicyConfig(
            obs_spec=obs_spec(IMAGE),
            action_spec=space_to_spec(spaces.Box(-1.0, 1.0, (2,), np.float32)),
            horizon=2,
            dim=16,
            depth=1,
            num_heads=2,
            steps=2,
            execute=1,
        )
    )
    init = save_policy(box, tmp_path / "box")
    kw = dict(steps=1, bundle=bundle, num_envs=2)
    with pytest.raises(ValueError, match="acts in Box.*but Dream-v0 acts in Discrete"):
        improve_in_dream(init, "Dream-v0", tmp_path / "a", **kw)
    with pytest.raises(ValueError, match="--eval-env must be a real env"):
        improve_in_dream(init, "Dream-v0", tmp_path / "b", eval_env="Dream-v0", **kw)
    venv = DreamVectorEnv(2, bundle=bundle)  # next-step autoreset, Gymnasium's default
    try:
        with pytest.raises(ValueError, match="same-step autoreset"):
            Imagination(tiny_policy(), venv, ImaginationConfig(num_envs=2))
    finally:
        venv.close()


def test_real_env_scores_during_imagination_sample_as_the_dream_rollouts_do(
    bundle, tmp_path, monkeypatch
):
    import agents.evaluation
    from agents.imagination import improve_in_dream

    temperatures = []

    def fake_evaluate(agent, env_id, episodes, progress=True):
        temperatures.append(agent.temperature)
        return {"mean_return": 0.0}

    monkeypatch.setattr(agents.evaluation, "evaluate_policy", fake_evaluate)
    init = save_policy(tiny_policy(), tmp_path / "bc")
    settings = dict(rollout_steps=2, value_dim=16, temperature=0.7)
    improve_in_dream(
        init,
        "Dream-v0",
        tmp_path / "run",
        steps=1,
        bundle=bundle,
        num_envs=2,
        overrides=settings,
        eval_env="MiniGridPixels-Empty-8x8-v0",
        eval_every=1,
    )
    assert temperatures == [0.7]


def test_load_policy_accepts_diffusion_folder(tmp_path):
    from agents.diffusion_policy import DiffusionAgent
    from experiments.policy_loading import load_policy

    folder = save_policy(tiny_policy(), tmp_path / "policy")
    agent = load_policy(f"diffusion:{folder}", "Dream-v0")
    assert isinstance(agent, DiffusionAgent)
    assert isinstance(load_agent(f"diffusion:{folder}", "Dream-v0"), DiffusionAgent)
    assert ACTIONS.contains(int(agent.act(np.zeros(IMAGE.shape, np.uint8))))
    with pytest.raises(FileNotFoundError, match="train-policy"):
        load_policy(f"diffusion:{tmp_path / 'missing'}", "Dream-v0")
    config = json.loads((folder / "config.json").read_text())
    config["config"]["bogus_field"] = 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="not a valid .*bogus_field"):
        load_policy(f"diffusion:{folder}", "Dream-v0")
    (tmp_path / "agent.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"agent.zip is not a saved PPO agent"):
        load_policy(f"ppo:{tmp_path / 'agent'}", "LaneSim-v0")  # ".zip" may be left out


def test_an_sb3_agent_is_refused_in_an_env_with_dict_observations():
    from types import SimpleNamespace

    import gymnasium as gym

    import envs  # noqa: F401  (registers the ids)
    from experiments.policy_loading import SB3Policy

    model = SimpleNamespace(
        observation_space=spaces.Box(0, 255, (8, 8, 3), np.uint8), action_space=spaces.Discrete(7)
    )
    with pytest.raises(ValueError, match="SB3 agents here observe arrays"):
        SB3Policy(model).reset(gym.make("MiniGridSymbolic-Empty-8x8-v0"), seed=0)


def test_sampling_agent_draws_varied_actions(tmp_path):
    folder = save_policy(tiny_policy(), tmp_path / "policy")
    obs = np.zeros(IMAGE.shape, np.uint8)

    def first_actions(temperature: float) -> set[int]:
        agent = load_agent(f"diffusion:{folder}", "Dream-v0", execute=1, temperature=temperature)
        agent.reset(None, seed=0)
        return {int(agent.act(obs)) for _ in range(30)}

    assert len(first_actions(0.0)) == 1  # argmax: the same observation, the same action
    assert len(first_actions(5.0)) > 1  # an untrained policy sampled hot: several actions


@pytest.mark.parametrize("command", ["train-policy", "evaluate"])
def test_cli_help(command):
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dreamgym"), command, "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert "--policy" in out.stdout if command == "evaluate" else "--algo" in out.stdout
