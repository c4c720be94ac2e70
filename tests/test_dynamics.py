"""Tests for the Dreamer 4-style dynamics model: config, shapes, agent-token isolation, time
causality, the KV cache (start / step), per-row generators and a tiny overfit."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from world_models.dynamics import Dynamics, DynamicsConfig, episode_mask, motion_token_weight
from world_models.shortcut import add_noise

N, D = 4, 8


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and the CI machine is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**overrides) -> DynamicsConfig:
    settings = dict(
        action_spec={"type": "Discrete", "n": 5},
        num_latents=N,
        latent_dim=D,
        dim=32,
        depth=2,
        num_heads=2,
        num_kv_heads=1,
        time_attention_every=1,
        num_registers=2,
        k_max=8,
        context_length=8,
    )
    settings.update(overrides)
    return DynamicsConfig(**settings)


def make_model(**overrides) -> Dynamics:
    torch.manual_seed(0)
    return Dynamics(tiny_config(**overrides)).eval()


def batch(b: int = 2, t: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    latents = torch.rand(b, t, N, D, generator=g) * 2 - 1
    action = torch.randint(0, 5, (b, t), generator=g)
    labeled = torch.ones(b, t, dtype=torch.bool)
    labeled[:, 0] = False
    reward = torch.randn(b, t, generator=g)
    terminal = torch.zeros(b, t, dtype=torch.bool)
    terminal[0, -1] = True
    return latents, action, labeled, reward, terminal


def run_net(model: Dynamics, z, tau, d, action, labeled, **kwargs):
    return model.net(z, tau, d, model.net.action(action, labeled), **kwargs)


def test_config_json_and_errors() -> None:
    cfg = tiny_config()
    again = DynamicsConfig.from_dict(json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert again == cfg
    with pytest.raises(ValueError, match="unknown DynamicsConfig keys"):
        DynamicsConfig.from_dict({**dataclasses.asdict(cfg), "depht": 3})
    with pytest.raises(ValueError, match="tau_ctx"):
        tiny_config(tau_ctx=1.5)
    with pytest.raises(ValueError, match="context_prob"):
        tiny_config(context_prob=1.0)
    with pytest.raises(ValueError, match="flow_share"):
        tiny_config(flow_share=1.0)
    with pytest.raises(ValueError, match="motion_weight"):
        tiny_config(motion_weight=-1.0)
    with pytest.raises(ValueError, match="action_dropout"):
        tiny_config(action_dropout=1.0)
    with pytest.raises(ValueError, match="guidance"):
        tiny_config(guidance=-0.5)
    with pytest.raises(ValueError, match="sample_d"):
        tiny_config(sample_d="fine")
    with pytest.raises(ValueError, match="power of two"):
        tiny_config(k_max=12)
    with pytest.raises(ValueError, match="time_attention_every"):
        tiny_config(time_attention_every=3)
    bad_counts = [("num_heads", 0), ("num_kv_heads", 0), ("dim", -8), ("depth", 2.5)]
    for field, value in bad_counts + [("sample_mean", 0)]:
        with pytest.raises(ValueError, match=f"{field} must be a whole number >= 1"):
            tiny_config(**{field: value})
    for field, value in [("attn_soft_cap", 0), ("attn_soft_cap", "x"), ("num_registers", -1)]:
        with pytest.raises(ValueError, match=field):
            tiny_config(**{field: value})
    with pytest.raises(ValueError, match=r"expected latents \(B, T, 4, 8\)"):
        make_model().loss(torch.zeros(2, 3, 4, 9), *batch()[1:])


def test_shapes_and_metrics() -> None:
    model = make_model(num_agent_tokens=2)
    latents, action, labeled, reward, terminal = batch()
    tau, d = torch.full((2, 4), 0.5), torch.full((2, 4), 0.25)
    x_hat, agent, kv = run_net(model, latents, tau, d, action, labeled, return_kv=True)
    assert x_hat.shape == (2, 4, N, D) and agent.shape == (2, 4, 32)
    slots = N + 1 + 2 + 1 + 2
    assert len(kv) == 2 and kv[0][0].shape == (2 * slots, 1, 4, 16)
    loss, metrics = model.loss(latents, action, labeled, reward, terminal)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert {"flow_mse", "bootstrap_mse", "reward_loss", "continue_accuracy"} <= set(metrics)


def test_context_prob_trains_on_context_frames() -> None:
    data = batch(b=16, t=4)
    g = torch.Generator().manual_seed(0)
    _, paper = make_model().loss(*data, generator=g)
    _, mixed = make_model(context_prob=0.9).loss(*data, generator=g)
    # Pure diffusion forcing: d > d_min (bootstrap) for 3 of 4 levels; context frames use d_min.
    assert paper["bootstrap_frac"] > 0.5 and mixed["bootstrap_frac"] < 0.3


def test_motion_weight_puts_the_loss_on_tokens_that_moved() -> None:
    latents = torch.zeros(1, 3, N, D)
    latents[0, 1, 2] = 0.5  # token 2 moves at frame 1, and back at frame 2
    is_first = torch.tensor([[True, False, True]])  # frame 2 starts a new episode
    weight = motion_token_weight(latents, 3.0, is_first)
    assert torch.allclose(weight.mean(-1), torch.ones(1, 3))  # each frame keeps its share
    assert torch.allclose(weight[0, 1], torch.tensor([4.0, 4.0, 16.0, 4.0]) / 7)
    assert torch.equal(weight[0, 0], torch.ones(N)) and torch.equal(weight[0, 2], torch.ones(N))
    # In the loss: static latents but for token 0, so the weighted loss differs from the plain.
    data = batch(b=4, t=4)
    moved = data[0][:, :1].repeat(1, 4, 1, 1)
    moved[:, :, 0] = torch.linspace(-1, 1, 4)[None, :, None]
    plain, weighted = make_model(), make_model(motion_weight=7.0)
    g = torch.Generator().manual_seed(0)
    _, m_plain = plain.loss(moved, *data[1:], generator=g)
    g = torch.Generator().manual_seed(0)
    _, m_weighted = weighted.loss(moved, *data[1:], generator=g)
    assert m_weighted["dynamics_loss"] != m_plain["dynamics_loss"]


def test_action_dropout_hides_actions_in_training() -> None:
    data = batch(b=2, t=4)
    other = (data[1] + 1) % 5

    def dynamics_loss(model: Dynamics, action: torch.Tensor) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        return model.loss(data[0], action, *data[2:], generator=g)[1]["dynamics_loss"]

    plain, hidden = make_model(), make_model(action_dropout=0.999)
    assert dynamics_loss(plain, data[1]) != dynamics_loss(plain, other)
    # With this generator every action is dropped, so which actions were taken is irrelevant.
    assert dynamics_loss(hidden, data[1]) == dynamics_loss(hidden, other)


def test_guidance_extrapolates_from_the_actionless_prediction() -> None:
    model = make_model()
    latents, action, labeled, *_ = batch(b=2, t=3)
    state = model.start(latents, action, labeled)
    new_action = torch.tensor([1, 3])

    def one_step(**kwargs) -> torch.Tensor:  # K = 1: the latents are x_hat itself (clamped)
        g = torch.Generator().manual_seed(5)
        return model.step(state, new_action, num_steps=1, generator=g, **kwargs)[0]

    cond = one_step()
    uncond = one_step(labeled=torch.zeros(2, dtype=torch.bool))
    model.config.guidance = 2.0
    guided = one_step()
    expected = (cond + 2.0 * (cond - uncond)).clamp(-1, 1)
    inside = (cond.abs() < 1) & (uncond.abs() < 1)  # neither prediction was clamped
    assert inside.float().mean() > 0.5 and not torch.allclose(cond, uncond, atol=1e-4)
    assert torch.allclose(guided[inside], expected[inside], atol=1e-5)


@pytest.mark.parametrize("sample_d", ["step", "finest"])
def test_sample_d_sets_the_step_size_sub_steps_are_told(
    sample_d: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model(sample_d=sample_d)
    latents, action, labeled, *_ = batch(b=2, t=3)
    state = model.start(latents, action, labeled)
    told, forward = [], model.net.forward

    def spy(z, tau, d, *args, **kwargs):
        told.append(d.flatten().tolist())
        return forward(z, tau, d, *args, **kwargs)

    monkeypatch.setattr(model.net, "forward", spy)
    model.step(state, torch.tensor([1, 3]), num_steps=4)
    sub_steps, cache_write = told[:4], told[4]
    expected = 0.25 if sample_d == "step" else 1 / model.config.k_max
    assert all(d == [expected] * 2 for d in sub_steps)
    assert cache_write == [1 / model.config.k_max] * 2


def test_agent_tokens_are_isolated() -> None:
    model = make_model(num_agent_tokens=2)
    mask = model.net.space_mask
    agents = slice(mask.shape[0] - 2, None)
    assert not mask[:-2, agents].any() and mask[agents].all() and mask[:-2, :-2].all()
    latents, action, labeled, *_ = batch()
    tau, d = torch.rand(2, 4), torch.full((2, 4), 0.125)
    x_hat, agent, _ = run_net(model, latents, tau, d, action, labeled)
    with torch.no_grad():
        model.net.agents.add_(torch.randn_like(model.net.agents))
    x_hat2, agent2, _ = run_net(model, latents, tau, d, action, labeled)
    assert torch.equal(x_hat, x_hat2)
    assert not torch.allclose(agent, agent2, atol=1e-3)


def test_time_causality() -> None:
    model = make_model()
    latents, action, labeled, *_ = batch(t=5)
    tau, d = torch.rand(2, 5), torch.full((2, 5), 0.125)
    x_hat, agent, _ = run_net(model, latents, tau, d, action, labeled)
    changed, act2 = latents.clone(), action.clone()
    changed[:, 3:] += 1.0
    act2[:, 3:] = (act2[:, 3:] + 1) % 5
    x_hat2, agent2, _ = run_net(model, changed, tau, d, act2, labeled)
    assert torch.allclose(x_hat[:, :3], x_hat2[:, :3], atol=1e-6)
    assert torch.allclose(agent[:, :3], agent2[:, :3], atol=1e-6)
    assert not torch.allclose(x_hat[:, 3:], x_hat2[:, 3:], atol=1e-3)
    # A window crossing an episode start (t = 3) sees nothing of the previous episode.
    is_first = torch.tensor([False, False, False, True, False]).expand(2, 5)
    mask = episode_mask(is_first)
    x_ep, _, _ = run_net(model, latents, tau, d, action, labeled, time_mask=mask)
    other_past = torch.cat((latents[:, :3] * 0.5, latents[:, 3:]), 1)
    x_ep2, _, _ = run_net(model, other_past, tau, d, action, labeled, time_mask=mask)
    assert torch.allclose(x_ep[:, 3:], x_ep2[:, 3:], atol=1e-6)
    assert not torch.allclose(x_ep[:, 3:], x_hat[:, 3:], atol=1e-3)
    # Earlier frames do influence later ones (time attention is wired in).
    early = latents.clone()
    early[:, 0] += 1.0
    assert not torch.allclose(run_net(model, early, tau, d, action, labeled)[0][:, 4], x_hat[:, 4])


def test_kv_cache_matches_full_forward() -> None:
    model = make_model(time_attention_every=2, depth=4, attn_soft_cap=30.0)
    latents, action, labeled, *_ = batch(t=6)
    g = torch.Generator().manual_seed(3)
    tau, d = torch.rand(2, 6, generator=g), 1 / 2 ** torch.randint(0, 4, (2, 6), generator=g)
    x_full, agent_full, _ = run_net(model, latents, tau, d, action, labeled)
    emb = model.net.action(action, labeled)
    _, _, kv = model.net(latents[:, :3], tau[:, :3], d[:, :3], emb[:, :3], return_kv=True)
    for t in range(3, 6):
        pos = torch.full((2, 1), t)
        args = (latents[:, t : t + 1], tau[:, t : t + 1], d[:, t : t + 1], emb[:, t : t + 1])
        x_t, agent_t, kv = model.net(*args, positions=pos, past=kv, return_kv=True)
        assert torch.allclose(x_t[:, 0], x_full[:, t], atol=1e-5)
        assert torch.allclose(agent_t[:, 0], agent_full[:, t], atol=1e-5)


@pytest.mark.parametrize("action_in_latents", [False, True])
def test_action_in_latents_conditions_the_latent_tokens(action_in_latents: bool) -> None:
    model = make_model(action_in_latents=action_in_latents)
    latents, action, labeled, *_ = batch()
    tau, d = torch.ones(2, 4), torch.full((2, 4), 0.125)
    tokens = [
        model.net.tokens(latents, tau, d, model.net.action(a, labeled))
        for a in (action, action + 0)
    ]
    other = model.net.tokens(latents, tau, d, model.net.action((action + 1) % 5, labeled))
    assert torch.equal(tokens[0], tokens[1])
    changed = (other - tokens[0]).abs().amax(-1)[:, 1:]  # (B, T - 1, S): labeled frames
    assert bool((changed[..., N] > 0).all())  # the action token always
    assert bool((changed[..., :N] > 0).all()) == action_in_latents


@pytest.mark.parametrize("action_in_latents", [False, True])
def test_start_step_equal_uncached_rollout(action_in_latents: bool) -> None:
    """start + step (K = 1) reproduce a full forward over context frames re-noised to tau_ctx
    and generated frames written once, re-noised to tau_ctx (noise drawn in the same order)."""
    model = make_model(action_in_latents=action_in_latents)
    cfg = model.config
    latents, action, labeled, *_ = batch(t=5)
    state = model.start(
        latents[:, :3], action[:, :3], labeled[:, :3], torch.Generator().manual_seed(7)
    )
    gen = torch.Generator().manual_seed(8)
    x3, r3, c3, state = model.step(state, action[:, 3], num_steps=1, generator=gen)
    x4, _, _, state = model.step(state, action[:, 4], num_steps=1, generator=gen)
    ref = torch.Generator().manual_seed(7)
    ctx = add_noise(latents[:, :3], torch.full((2, 3), 0.9), torch.randn(2, 3, N, D, generator=ref))
    ref = torch.Generator().manual_seed(8)
    z3, n3 = torch.randn(2, N, D, generator=ref), torch.randn(2, N, D, generator=ref)
    z4 = torch.randn(2, N, D, generator=ref)
    d_min = 1 / cfg.k_max
    seq = torch.cat((ctx, z3[:, None]), 1)
    tau = torch.tensor([0.9, 0.9, 0.9, 0.0]).expand(2, 4)
    d = torch.tensor([d_min, d_min, d_min, 1.0]).expand(2, 4)
    x_hat, _, _ = run_net(model, seq, tau, d, action[:, :4], labeled[:, :4])
    assert torch.allclose(x3, x_hat[:, 3].clamp(-1, 1), atol=1e-5)
    written = add_noise(x3, torch.full((2,), 0.9), n3)
    seq = torch.cat((ctx, written[:, None]), 1)
    _, agent, _ = run_net(
        model,
        seq,
        torch.full((2, 4), 0.9),
        torch.full((2, 4), d_min),
        action[:, :4],
        labeled[:, :4],
    )
    assert torch.allclose(r3, model.reward_head.predict(model.reward_head(agent[:, 3])), atol=1e-5)
    assert torch.allclose(c3, torch.sigmoid(model.continue_head(agent[:, 3])), atol=1e-5)
    seq = torch.cat((seq, z4[:, None]), 1)
    tau = torch.tensor([0.9] * 4 + [0.0]).expand(2, 5)
    d = torch.tensor([d_min] * 4 + [1.0]).expand(2, 5)
    x_hat, _, _ = run_net(model, seq, tau, d, action, labeled)
    assert torch.allclose(x4, x_hat[:, 4].clamp(-1, 1), atol=1e-5)


def test_sliding_window_and_fresh_noise() -> None:
    model = make_model(context_length=3)
    latents, action, labeled, *_ = batch(t=5)
    state = model.start(latents, action, labeled)
    assert state.kv[0][0].shape[2] == 3 and state.position.tolist() == [3, 3]
    g = torch.Generator().manual_seed(0)
    x1, *_, next_state = model.step(state, action[:, 0], generator=g)
    x2, *_ = model.step(state, action[:, 0], generator=g)  # same state, generator moved on
    assert next_state.kv[0][0].shape[2] == 3 and next_state.position.tolist() == [4, 4]
    assert not torch.allclose(x1, x2, atol=1e-4)
    x3, *_ = model.step(state, action[:, 0], generator=torch.Generator().manual_seed(0))
    assert torch.equal(x1, x3)


def test_per_row_generators_match_single_rollouts() -> None:
    model = make_model()
    latents, action, labeled, *_ = batch(b=2, t=3)
    gens = [torch.Generator().manual_seed(10), torch.Generator().manual_seed(11)]
    state = model.start(latents, action, labeled, generator=gens)
    x, reward, _, _ = model.step(state, action[:, 0], generator=gens)
    for row in range(2):
        g = torch.Generator().manual_seed(10 + row)
        one = slice(row, row + 1)
        alone = model.start(latents[one], action[one], labeled[one], generator=g)
        x_row, reward_row, _, _ = model.step(alone, action[one, 0], generator=g)
        assert torch.allclose(x[row], x_row[0], atol=1e-5)
        assert torch.allclose(reward[row], reward_row[0], atol=1e-5)
    with pytest.raises(ValueError, match="3 generators for a batch of 2"):
        model.step(state, action[:, 0], generator=gens + gens[:1])


@pytest.mark.parametrize("guidance", [0.0, 1.0])
def test_sample_mean_averages_samples_that_read_their_rows_past(guidance: float) -> None:
    """sample_mean = M: a row's frame is the mean of the M samples its past repeated M times
    gives (drawn from that row's generator); the cache gets one write per row."""
    one, mean = (make_model(guidance=guidance, sample_mean=m) for m in (1, 3))
    latents, action, labeled, *_ = batch(b=2, t=3)
    state = one.start(latents, action, labeled)
    repeated = state.repeated(3)
    assert torch.equal(
        repeated.kv[0][0].unflatten(0, (6, -1))[4], state.kv[0][0].unflatten(0, (2, -1))[1]
    )
    gens = [torch.Generator().manual_seed(s) for s in (7, 8)]
    each = [g for g in gens for _ in range(3)]
    samples, *_ = one.step(repeated, action[:, 0].repeat_interleave(3), generator=each)
    assert not torch.allclose(samples[0], samples[1], atol=1e-3)  # the M samples differ
    gens = [torch.Generator().manual_seed(s) for s in (7, 8)]
    x, _, _, after = mean.step(state, action[:, 0], generator=gens)
    samples = samples.view(2, 3, N, D)
    inside = (samples.abs() < 1).all(1)  # no sample clamped there
    assert inside.float().mean() > 0.5
    assert torch.allclose(x[inside], samples.mean(1)[inside], atol=1e-6)
    written = one.step(state, action[:, 0])[3]
    assert [k.shape for k, _ in after.kv] == [k.shape for k, _ in written.kv]


def test_replace_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row reset with a shorter context behaves exactly like a rollout started alone."""
    zeros = lambda shape, generator=None, device=None, dtype=None: torch.zeros(
        shape, device=device, dtype=dtype
    )
    model = make_model()
    latents, action, labeled, *_ = batch(b=2, t=4)
    monkeypatch.setattr(torch, "randn", zeros)  # deterministic, row-independent noise
    both = model.start(latents, action, labeled)
    fresh = model.start(latents[1:, :2], action[1:, :2], labeled[1:, :2])
    mixed = both.replace_rows(torch.tensor([1]), fresh)
    assert mixed.valid.tolist() == [[True] * 4, [False, False, True, True]]
    x_mixed, r_mixed, *_ = model.step(mixed, action[:, 2])
    x_both, *_ = model.step(both, action[:, 2])
    x_fresh, r_fresh, *_ = model.step(fresh, action[1:, 2])
    assert torch.allclose(x_mixed[0], x_both[0], atol=1e-5)
    assert torch.allclose(x_mixed[1], x_fresh[0], atol=1e-5)
    assert torch.allclose(r_mixed[1], r_fresh[0], atol=1e-5)


@pytest.mark.parametrize("guidance", [0.0, 1.0])
def test_traced_steps_equal_eager_steps(guidance: float) -> None:
    """Traces made at one batch size and cache length give the eager results at others, with
    a left-padded (masked) row, through the sliding window, and follow in-place weight edits."""
    eager, traced = (make_model(guidance=guidance, context_length=4) for _ in range(2))
    traced.trace_for_speed()
    latents, action, labeled, *_ = batch(b=3, t=3)

    def rollout(model: Dynamics, rows: slice, steps: int = 4) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        state = model.start(latents[rows], action[rows], labeled[rows], generator=g)
        if rows.stop - rows.start > 1:  # row 1 restarted with one frame: a masked cache
            fresh = model.start(latents[1:2, :1], action[1:2, :1], labeled[1:2, :1], generator=g)
            state = state.replace_rows(torch.tensor([1]), fresh)
        out = []
        for t in range(steps):
            x, reward, cont, state = model.step(state, action[rows, t % 3], generator=g)
            out += [x, reward, cont, state.kv[-1][0]]
        return out

    for rows in (slice(0, 3), slice(0, 1), slice(0, 3)):
        for a, b in zip(rollout(eager, rows), rollout(traced, rows), strict=True):
            assert torch.allclose(a, b, atol=1e-6)
    with torch.no_grad():
        for model in (eager, traced):
            model.net.latent_out.weight.mul_(0.5)
    for a, b in zip(rollout(eager, slice(0, 1)), rollout(traced, slice(0, 1)), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert traced._traced._traces  # the steps did run through traces


def test_tiny_overfit_loss_decreases() -> None:
    torch.manual_seed(0)
    model = Dynamics(tiny_config()).train()
    data = batch()
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses, dynamics_losses = [], []
    for _ in range(60):
        loss, metrics = model.loss(*data, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        dynamics_losses.append(metrics["dynamics_loss"].item())
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    assert sum(dynamics_losses[-10:]) < 0.7 * sum(dynamics_losses[:10])


def test_imagine_uses_the_no_action_embedding_where_actions_are_unknown() -> None:
    from world_models.tokenizer_cnn import CNNTokenizer, CNNTokenizerConfig
    from world_models.world_model import WorldModel

    side = 4 * int(N**0.5)  # two downsamples: an (N ** 0.5)^2 grid of latents
    torch.manual_seed(0)
    tok = CNNTokenizer(
        CNNTokenizerConfig(image_size=side, base_channels=8, num_downsamples=2, latent_dim=D)
    ).eval()
    wm = WorldModel(tok, make_model(), num_steps=1)
    obs = torch.randint(0, 256, (1, 3, side, side, 3), dtype=torch.uint8)
    action = torch.tensor([[0, 1, 2]])
    known = torch.tensor([[False, True, True]])
    unknown = torch.tensor([[False, True, False]])

    def dream(labeled: torch.Tensor) -> torch.Tensor:
        return wm.imagine(obs, action, labeled, 2, torch.Generator().manual_seed(3)).frame

    g = torch.Generator().manual_seed(3)
    state, _ = wm.start(obs[:, :2], action[:, :2], known[:, :2], g)
    hidden = wm.step(state, action[:, 2], g, labeled=torch.tensor([False]))[1]
    assert torch.allclose(dream(unknown), wm.decode(hidden)[:, None])
    assert not torch.allclose(dream(unknown), dream(known))


def test_bad_actions_targets_and_step_counts_are_clear_errors() -> None:
    model = make_model()
    latents, action, labeled, reward, terminal = batch()
    with pytest.raises(ValueError, match="reward must have shape"):
        model.loss(latents, action, labeled, reward[:, :3], terminal)
    with pytest.raises(ValueError, match=r"labeled has shape \(2, 4\) but actions \(2, 3\)"):
        model.loss(latents, action[:, :3], labeled, reward, terminal)
    with pytest.raises(ValueError, match=r"expected actions of shape \(2, 2, \*action shape\)"):
        model.start(latents[:, :2], action[:, :1], labeled[:, :1])
    state = model.start(latents[:, :2], action[:, :2], labeled[:, :2])
    with pytest.raises(ValueError, match=r"expected actions of shape \(2, \*action shape\)"):
        model.step(state, action[:, :1])  # (B, 1) for a Discrete space
    with pytest.raises(ValueError, match="num_sampling_steps"):
        tiny_config(num_sampling_steps=3)
    # unlabeled entries may hold any placeholder, NaN included
    nan_actions = action.float().masked_fill(~labeled, float("nan"))
    assert torch.isfinite(model.loss(latents, nan_actions, labeled, reward, terminal)[0])


def test_world_model_samples_with_the_models_step_count_and_reward_decodes_in_float32() -> None:
    from world_models.heads import TwoHot
    from world_models.tokenizer_cnn import CNNTokenizer, CNNTokenizerConfig
    from world_models.world_model import WorldModel

    config = CNNTokenizerConfig(image_size=8, base_channels=8, num_downsamples=2, latent_dim=D)
    assert WorldModel(CNNTokenizer(config), make_model(num_sampling_steps=2)).num_steps == 2
    two_hot = TwoHot()
    values = torch.tensor([10.0, 123.4, -3.0])
    logits = torch.log(two_hot.encode(values) + 1e-30)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        decoded = two_hot.decode(logits)
    assert decoded.dtype == torch.float32
    assert torch.allclose(decoded, values, rtol=1e-4)


def test_head_targets_of_unlabeled_steps_do_not_count() -> None:
    """Unlabeled video stores reward 0 and never terminates: those are not targets."""
    model = make_model()
    with torch.no_grad():  # heads start at zero logits, whose losses ignore the targets
        for p in [*model.reward_head.parameters(), *model.continue_head.parameters()]:
            p.normal_(0.0, 0.5)
    latents, action, labeled, reward, terminal = batch()
    labeled[1, 2:] = False
    other_reward, other_terminal = reward.clone(), terminal.clone()
    other_reward[1, 2:] += 5.0
    other_terminal[1, 3] = True

    def head_losses(r: torch.Tensor, term: torch.Tensor) -> tuple[float, float]:
        g = torch.Generator().manual_seed(0)
        metrics = model.loss(latents, action, labeled, r, term, generator=g)[1]
        return metrics["reward_loss"].item(), metrics["continue_loss"].item()

    assert head_losses(reward, terminal) == head_losses(other_reward, other_terminal)
    labeled[1, 2:] = True
    assert head_losses(reward, terminal) != head_losses(other_reward, other_terminal)
