"""Masked diffusion policy: action tokens, SUBS, the unmasking sampler, and BC overfitting."""

from __future__ import annotations

import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.bc import ChunkSampler, train_bc
from agents.diffusion_policy import (
    ActionTokenizer,
    DiffusionAgent,
    DiffusionPolicy,
    DiffusionPolicyConfig,
    load_diffusion_policy,
)
from agents.obs_encoders import obs_spec
from data_collection.recording import collect
from data_collection.sequence_view import SequenceView
from world_models.action_encoder import space_to_spec
from world_models.trainer import TrainConfig

IMAGE = spaces.Box(0, 255, (16, 16, 3), np.uint8)


def tiny_policy(action_space, horizon: int = 4, **kw) -> DiffusionPolicy:
    torch.manual_seed(0)
    cfg = DiffusionPolicyConfig(
        obs_spec=obs_spec(IMAGE),
        action_spec=space_to_spec(action_space),
        horizon=horizon,
        dim=32,
        depth=2,
        num_heads=2,
        steps=4,
        **kw,
    )
    return DiffusionPolicy(cfg)


@pytest.mark.parametrize(
    "space",
    [
        spaces.Discrete(7),
        spaces.Discrete(5, start=-2),
        spaces.MultiDiscrete([21, 21, 2, 2, 2, 2, 2]),
        spaces.Box(-1.0, 1.0, (2,), np.float32),
        spaces.Box(np.array([0.0, -3.0]), np.array([1.0, 5.0]), dtype=np.float32),
    ],
)
def test_tokenizer_round_trip(space):
    tok = ActionTokenizer(space, bins=21)
    space.seed(0)
    actions = np.stack([space.sample() for _ in range(50)])  # (50, *shape)
    tokens = tok.encode(actions)
    assert tokens.shape == (50, tok.dims)
    assert (tokens >= 0).all() and (tokens < np.array(tok.sizes)).all()
    back = tok.decode(tokens)
    assert back.shape == actions.shape
    if isinstance(space, spaces.Box):
        width = (space.high - space.low) / 20  # bin spacing
        assert np.all(np.abs(back - actions) <= width / 2 + 1e-6)
        assert np.array_equal(tok.encode(back), tokens)  # bin centres are fixed points
        assert space.contains(back[0])
    else:
        assert np.array_equal(back, actions)


def test_box_without_bounds_is_rejected():
    with pytest.raises(ValueError, match="finite bounds"):
        ActionTokenizer(spaces.Box(-np.inf, np.inf, (2,), np.float32))


def test_subs_mask_never_predicted_and_unmasked_copied():
    policy = tiny_policy(spaces.MultiDiscrete([3, 5]))  # L = 4 * 2, V = 5, mask id 5
    with torch.no_grad():  # random weights everywhere, so the test is not trivially zeros
        for p in policy.parameters():
            p.normal_(0, 0.2)
    obs = torch.randint(0, 256, (3, 16, 16, 3), dtype=torch.uint8)
    x = torch.full((3, policy.length), policy.mask_id)
    x[:, ::3] = torch.tensor([0, 1, 2])[:, None].expand(3, -1)[:, : x[:, ::3].shape[1]]
    logp = policy.log_probs(policy.encode(obs), x, torch.full((3,), 0.5))
    assert torch.isneginf(logp[..., policy.mask_id]).all()
    unmasked = x != policy.mask_id
    assert torch.equal(logp[unmasked].argmax(-1), x[unmasked])
    assert torch.allclose(logp[unmasked].exp().max(-1).values, torch.ones(()))
    # dimension 0 has 3 values: tokens 3 and 4 are impossible there
    assert torch.isneginf(logp[:, 0::2, 3:5]).all()
    probs = logp[~unmasked].exp()
    assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sampler_never_changes_decoded_tokens(temperature):
    policy = tiny_policy(spaces.MultiDiscrete([4, 3]), horizon=5)
    with torch.no_grad():
        for p in policy.parameters():
            p.normal_(0, 0.2)
    trace: list[torch.Tensor] = []
    obs = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8)
    out = policy.sample(obs, temperature, generator=torch.Generator().manual_seed(1), trace=trace)
    assert len(trace) == policy.config.steps
    masked_counts = [int((x == policy.mask_id).sum(-1).max()) for x in trace]
    assert masked_counts[-1] == 0 and masked_counts == sorted(masked_counts, reverse=True)
    for before, after in zip(trace[:-1], trace[1:], strict=True):
        decoded = before != policy.mask_id
        assert torch.equal(after[decoded], before[decoded])
    assert (out[:, 0::2] < 4).all() and (out[:, 1::2] < 3).all()


@pytest.mark.parametrize("horizon, steps", [(7, 7), (9, 3), (10, 4), (8, 8)])
def test_sampler_reveals_tokens_on_the_linear_schedule(horizon, steps):
    """After step j of S, ceil(L j / S) tokens are decoded (exactly, for any S: float rounding
    in 1 - (k - 1) / S once revealed a token early and none at a later step)."""
    policy = tiny_policy(spaces.Discrete(5), horizon=horizon)
    trace: list[torch.Tensor] = []
    policy.sample(torch.zeros(2, 16, 16, 3, dtype=torch.uint8), steps=steps, trace=trace)
    decoded = [(x != policy.mask_id).sum(-1).tolist() for x in trace]
    assert decoded == [[math.ceil(horizon * j / steps)] * 2 for j in range(1, steps + 1)]


def test_mdlm_loss_ignores_padding():
    policy = tiny_policy(spaces.Discrete(7))
    obs = torch.randint(0, 256, (8, 16, 16, 3), dtype=torch.uint8)
    x0 = torch.randint(0, 7, (8, policy.length))
    valid = torch.zeros_like(x0, dtype=torch.bool)
    valid[:, :2] = True
    torch.manual_seed(3)
    loss_a, _ = policy.loss(obs, x0, valid)
    x0_other = x0.clone()
    x0_other[:, 2:] = (x0[:, 2:] + 1) % 7  # change only the padded targets
    torch.manual_seed(3)
    loss_b, _ = policy.loss(obs, x0_other, valid)
    assert torch.isfinite(loss_a) and torch.allclose(loss_a, loss_b)


@pytest.fixture(scope="module")
def doorkey_expert(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari")
    collect(
        "MiniGridPixels-DoorKey-8x8-v0",
        "expert",
        3,
        "test/doorkey-expert-v0",
        data_dir=root,
        progress=False,
    )
    return root


def test_bc_overfits_expert_actions(doorkey_expert, tmp_path):
    cfg = TrainConfig(steps=500, batch_size=32, lr=2e-3, warmup=10, log_every=100, ckpt_every=1000)
    overrides = dict(horizon=2, dim=32, depth=2, num_heads=2, steps=2, execute=1)
    policy, folder = train_bc(
        "test/doorkey-expert-v0", tmp_path / "run", cfg, doorkey_expert, overrides
    )
    view = SequenceView("test/doorkey-expert-v0", doorkey_expert)
    hits = total = 0
    for i in range(view.num_episodes):
        ep = view.episode(i)
        tokens = policy.sample(torch.from_numpy(ep["obs"][:-1]))
        first = policy.chunk_actions(tokens)[:, 0]  # the action taken at each state
        hits += int((first == ep["action"][1:]).sum())
        total += len(first)
    assert hits / total >= 0.9, f"first-action accuracy {hits / total:.2f}"
    loaded = load_diffusion_policy(folder)
    obs = torch.from_numpy(view.episode(0)["obs"][:3])
    assert torch.equal(loaded.sample(obs), policy.sample(obs))
    agent = DiffusionAgent(loaded)
    agent.reset(None, seed=0)
    assert int(agent.act(view.episode(0)["obs"][0])) == int(view.episode(0)["action"][1])


def test_bc_run_folder_is_kept_and_resumes_with_its_settings(doorkey_expert, tmp_path):
    small = dict(horizon=2, dim=16, depth=1, num_heads=2, steps=2, execute=1)
    cfg = TrainConfig(steps=4, batch_size=4, warmup=1, ckpt_every=2)
    run = tmp_path / "run"
    train_bc("test/doorkey-expert-v0", run, cfg, doorkey_expert, small)
    with pytest.raises(FileExistsError, match="--resume"):  # not silently restarted
        train_bc("test/doorkey-expert-v0", run, cfg, doorkey_expert, small)
    longer = TrainConfig(steps=6, batch_size=8, warmup=1, ckpt_every=2)
    train_bc("test/doorkey-expert-v0", run, longer, doorkey_expert, resume=True)
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000006"
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["train"]["steps"] == 6 and recorded["train"]["batch_size"] == 4
    assert recorded["policy"]["dim"] == 16  # the recorded policy, not this call's defaults
    with pytest.raises(ValueError, match="recorded in MiniGridPixels-DoorKey-8x8-v0"):
        train_bc("test/doorkey-expert-v0", tmp_path / "x", cfg, doorkey_expert, env_id="LaneSim-v0")


def test_chunk_sampler_alignment_and_padding(doorkey_expert):
    view = SequenceView("test/doorkey-expert-v0", doorkey_expert)
    policy = tiny_policy(view.action_space, horizon=6)
    batch = ChunkSampler(view, policy)(64, 0, np.random.default_rng(0))
    episodes = [view.episode(i) for i in range(view.num_episodes)]
    for obs, tokens, valid in zip(batch["obs"], batch["tokens"], batch["valid"], strict=True):
        assert valid[0] and (np.diff(valid.astype(int)) <= 0).all()  # valid prefix, then padding
        matches = [
            (ep, t)
            for ep in episodes
            for t in range(len(ep["obs"]))
            if np.array_equal(ep["obs"][t], obs)
        ]
        assert any(
            np.array_equal(ep["action"][t + 1 : t + 1 + valid.sum()], tokens[valid])
            for ep, t in matches
        )


def test_bc_on_symbolic_minigrid(tmp_path):
    """MiniGrid's symbolic grid: Dict observations through the view, the sampler and BC."""
    root = tmp_path / "minari"
    collect("MiniGridSymbolic-DoorKey-8x8-v0", "expert", 2, "test/sym-v0", root, progress=False)
    view = SequenceView("test/sym-v0", root)
    ep = view.episode(0)
    assert set(ep["obs"]) == {"grid", "direction"} and ep["obs"]["grid"].shape[1:] == (8, 8, 3)
    window = view.sample(4, 3, np.random.default_rng(0))
    assert window["obs"]["grid"].shape == (4, 3, 8, 8, 3) and window["obs"]["direction"].shape == (
        4,
        3,
    )
    with pytest.raises(ValueError, match="needs image observations.*MiniGridPixels-DoorKey-8x8-v0"):
        view.require_images("a tokenizer")
    cfg = TrainConfig(steps=300, batch_size=32, lr=2e-3, warmup=10, log_every=100, ckpt_every=1000)
    overrides = dict(horizon=2, dim=32, depth=2, num_heads=2, steps=2, execute=1)
    policy, _ = train_bc("test/sym-v0", tmp_path / "run", cfg, root, overrides)
    assert policy.config.obs_spec == {"type": "symbolic", "width": 8, "height": 8}
    hits = total = 0
    for i in range(view.num_episodes):
        ep = view.episode(i)
        obs = {k: torch.from_numpy(v[:-1]) for k, v in ep["obs"].items()}
        first = policy.chunk_actions(policy.sample(obs))[:, 0]
        hits += int((first == ep["action"][1:]).sum())
        total += len(first)
    assert hits / total >= 0.9, f"first-action accuracy {hits / total:.2f}"
    pixel_env = gym.make("MiniGridPixels-DoorKey-8x8-v0")
    with pytest.raises(ValueError, match="reads .*symbolic.* observations but MiniGridPixels"):
        DiffusionAgent(policy).reset(pixel_env, seed=0)


@pytest.mark.parametrize("weight, expected", [("chunk", (1.0 + 2.0) / 2), ("token", 7.0 / 4)])
def test_loss_weight_gives_each_chunk_or_each_token_the_same_weight(monkeypatch, weight, expected):
    """Chunk 0: one masked token of cross-entropy 1; chunk 1: three of 2 each."""
    policy = tiny_policy(spaces.Discrete(7), loss_weight=weight)
    target = torch.tensor([[True, False, False, False], [True, True, True, False]])
    t = torch.tensor([0.25, 0.75])

    def token_nll(obs, x0, valid):
        summed = torch.tensor([1.0, 6.0])
        return {"nll": summed / t, "t": t, "target": target, "logp": torch.zeros(2, 4, 8)}

    monkeypatch.setattr(policy, "token_nll", token_nll)
    loss, _ = policy.loss(None, torch.zeros(2, 4, dtype=torch.long), target)
    assert loss.item() == pytest.approx(expected)


def test_policy_config_is_checked_and_old_configs_keep_their_loss_weight(tmp_path):
    base = dict(obs_spec=obs_spec(IMAGE), action_spec=space_to_spec(spaces.Discrete(7)))
    for bad in (dict(steps=0), dict(horizon=2, execute=3), dict(t_min=0.0), dict(loss_weight="x")):
        with pytest.raises(ValueError):
            DiffusionPolicyConfig(**base, **bad)
    assert DiffusionPolicyConfig(**base).loss_weight == "chunk"
    saved = {k: v for k, v in dataclasses.asdict(DiffusionPolicyConfig(**base)).items()}
    del saved["loss_weight"]  # a config saved before the setting existed
    assert DiffusionPolicyConfig.from_saved(saved).loss_weight == "token"


def test_bc_seed_decides_the_initial_weights_and_bad_settings_are_named(doorkey_expert, tmp_path):
    small = dict(horizon=2, dim=16, depth=1, num_heads=2, steps=2, execute=1)
    cfg = TrainConfig(steps=1, batch_size=2, warmup=1, ckpt_every=10)
    weights = []
    for i, seed in enumerate((0, 0, 1)):
        torch.manual_seed(100 + i)  # what came before must not matter
        run_cfg = dataclasses.replace(cfg, seed=seed)
        policy, _ = train_bc(
            "test/doorkey-expert-v0", tmp_path / str(i), run_cfg, doorkey_expert, small
        )
        weights.append(torch.cat([p.detach().flatten() for p in policy.parameters()]))
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    with pytest.raises(ValueError, match="unknown setting"):
        train_bc("test/doorkey-expert-v0", tmp_path / "x", cfg, doorkey_expert, {"hoizon": 2})
    with pytest.raises(ValueError, match="horizon must be of type int"):
        train_bc("test/doorkey-expert-v0", tmp_path / "y", cfg, doorkey_expert, {"horizon": "a"})
