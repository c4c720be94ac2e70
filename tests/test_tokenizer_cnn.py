"""CNN tokenizer (shapes, ranges, errors, tiny overfit, no mean collapse) and its loss."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from world_models.metrics import psnr
from world_models.recon_loss import ReconstructionLoss
from world_models.tokenizer_cnn import CNNTokenizer, CNNTokenizerConfig


def _rgb(r: int, g: int, b: int) -> torch.Tensor:
    return torch.tensor([r, g, b], dtype=torch.uint8)


def minigrid_like(num_frames: int, seed: int = 0) -> torch.Tensor:
    """(num_frames, 64, 64, 3) uint8 frames drawn like MiniGrid 8x8 renders (8-pixel tiles):
    grey grid lines and walls, a green goal, a yellow key and a red triangle agent facing one
    of four ways, at random cells."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.zeros(num_frames, 64, 64, 3, dtype=torch.uint8)
    triangle = torch.tensor([[abs(c - 3.5) <= r / 2 for c in range(8)] for r in range(8)])
    border = [(r, c) for r in range(8) for c in range(8) if r in (0, 7) or c in (0, 7)]
    for img in frames:
        img[::8], img[:, ::8] = 100, 100
        cells = [(1 + int(i) // 6, 1 + int(i) % 6) for i in torch.randperm(36, generator=g)[:6]]
        for r, c in border + cells[:3]:
            img[8 * r : 8 * r + 8, 8 * c : 8 * c + 8] = 100
        (gr, gc), (kr, kc), (ar, ac) = cells[3:]
        img[8 * gr + 1 : 8 * gr + 8, 8 * gc + 1 : 8 * gc + 8] = _rgb(0, 255, 0)
        img[8 * kr + 2 : 8 * kr + 6, 8 * kc + 3 : 8 * kc + 5] = _rgb(255, 255, 0)
        facing = torch.rot90(triangle, int(torch.randint(4, (1,), generator=g)))
        img[8 * ar : 8 * ar + 8, 8 * ac : 8 * ac + 8][facing] = _rgb(255, 0, 0)
    return frames


def test_shapes_and_ranges() -> None:
    torch.manual_seed(0)
    tok = CNNTokenizer()
    assert (tok.num_latents, tok.latent_dim) == (64, 16)  # 8x8 grid of 16-wide tokens
    video = minigrid_like(6).view(2, 3, 64, 64, 3)
    latents = tok.encode(video)
    assert latents.shape == (2, 3, 64, 16)
    assert latents.abs().max() <= 1.0
    recon = tok.decode(latents)
    assert recon.shape == (2, 3, 64, 64, 3) and recon.dtype == torch.float32
    assert recon.min() >= 0.0 and recon.max() <= 1.0
    assert torch.allclose(tok.encode(video.float() / 255), latents)
    assert torch.equal(tok(video), recon)
    # Frames are encoded independently, in order.
    assert torch.allclose(tok.encode(video[:, 1:2]), latents[:, 1:2], atol=1e-6)


def test_config_round_trips_through_json_and_other_sizes() -> None:
    config = CNNTokenizerConfig(image_size=32, channels=1, num_downsamples=2, base_channels=8)
    rebuilt = CNNTokenizerConfig(**json.loads(json.dumps(dataclasses.asdict(config))))
    assert rebuilt == config
    tok = CNNTokenizer(rebuilt)
    latents = tok.encode(torch.zeros(1, 2, 32, 32, 1, dtype=torch.uint8))
    assert latents.shape == (1, 2, 64, 16)
    assert tok.decode(latents).shape == (1, 2, 32, 32, 1)


def test_bad_input_is_a_clear_error() -> None:
    tok = CNNTokenizer(CNNTokenizerConfig(base_channels=8))
    with pytest.raises(ValueError, match=r"\(B, T, 64, 64, 3\)"):
        tok.encode(torch.zeros(2, 64, 64, 3))
    with pytest.raises(ValueError, match=r"\(B, T, 64, 64, 3\)"):
        tok(torch.zeros(1, 2, 64, 64, 1))
    with pytest.raises(ValueError, match=r"\(B, T, 64, 16\)"):
        tok.decode(torch.zeros(1, 2, 16, 16))
    with pytest.raises(ValueError, match="num_downsamples"):
        CNNTokenizerConfig(image_size=60)
    with pytest.raises(ValueError, match="latent_dim"):
        CNNTokenizerConfig(latent_dim=0)


def test_tiny_overfit_reconstructs_and_does_not_collapse_to_the_mean() -> None:
    # 8 frames, 200 Adam steps with the real loss (perceptual off for speed) on a slim model.
    # Measured with plain MSE over seeds 0-3: 32-35 dB after 200 steps, 28-31 dB after 150.
    torch.manual_seed(0)
    video = minigrid_like(8)[None]  # (1, 8, 64, 64, 3)
    target = video.float() / 255
    tok = CNNTokenizer(CNNTokenizerConfig(base_channels=16, blocks_per_stage=0))
    loss_fn = ReconstructionLoss(perceptual="none").train()
    opt = torch.optim.Adam(tok.parameters(), lr=5e-3)
    for _ in range(200):
        loss, _ = loss_fn(tok(video), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        recon = tok(video)[0]  # (8, 64, 64, 3)
    assert psnr(recon[None], target).mean() > 25.0
    # Every reconstruction is closer to its own frame than to any other frame ...
    err = ((recon[:, None] - target[0][None]) ** 2).mean(dim=(2, 3, 4))  # (recon i, frame j)
    assert torch.equal(err.argmin(dim=1), torch.arange(8))
    # ... and reconstructions vary across frames about as much as the frames do.
    assert recon.std(dim=0).mean() > 0.8 * target[0].std(dim=0).mean()


def test_loss_terms_are_divided_by_their_running_rms() -> None:
    target = torch.full((1, 2, 64, 64, 3), 0.5)
    loss_fn = ReconstructionLoss(perceptual="stlpips", rms_momentum=0.9).train()
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1).requires_grad_(True)
    loss, metrics = loss_fn(pred, target)
    # First training step: each term is divided by its own value, so loss = 1 + 0.2.
    assert loss.item() == pytest.approx(1.2, rel=1e-5)
    assert set(metrics) == {"mse", "perceptual", "psnr", "rms_mse", "rms_perceptual"}
    assert metrics["rms_mse"] == pytest.approx(metrics["mse"], rel=1e-5)
    assert metrics["psnr"] == pytest.approx(psnr(pred.detach(), target).mean().item())
    loss.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0

    # Second step with 10x the error: the estimate moves by (1 - momentum) only.
    mse_loss = ReconstructionLoss(perceptual="none", rms_momentum=0.9).train()
    mse_loss(target + 0.01, target)
    loss, metrics = mse_loss(target + 0.1, target)
    expected_ms = 0.9 * 1e-4**2 + 0.1 * 1e-2**2
    assert metrics["rms_mse"] == pytest.approx(expected_ms**0.5, rel=1e-4)
    assert loss.item() == pytest.approx(1e-2 / expected_ms**0.5, rel=1e-4)

    # Eval mode reads the estimate without changing it; it is saved with the module.
    state = {k: v.clone() for k, v in mse_loss.state_dict().items()}
    mse_loss.eval()
    loss, _ = mse_loss(target + 0.3, target)
    assert loss.item() == pytest.approx(0.09 / expected_ms**0.5, rel=1e-4)
    assert set(state) == {"mean_square", "updates"}
    assert all(torch.equal(v, mse_loss.state_dict()[k]) for k, v in state.items())


def test_loss_options_and_errors() -> None:
    target = torch.rand(2, 4, 32, 32, 1)
    loss_fn = ReconstructionLoss(perceptual="stlpips", perceptual_frames=2).train()
    loss, metrics = loss_fn((target + 0.05).clamp(0, 1), target)
    assert torch.isfinite(loss) and metrics["perceptual"] > 0
    with pytest.raises(ValueError, match=r"\(B, T, H, W, C\)"):
        loss_fn(target, target[:, :2])
    with pytest.raises(ValueError, match="backend"):
        ReconstructionLoss(perceptual="l1")
    with pytest.raises(ValueError, match="rms_momentum"):
        ReconstructionLoss(perceptual="none", rms_momentum=1.0)


def test_bottleneck_norm_keeps_large_features_from_saturating_the_tanh() -> None:
    cfg = dict(image_size=16, base_channels=8, max_channels=16, num_downsamples=2, latent_dim=8)
    torch.manual_seed(0)
    plain = CNNTokenizer(CNNTokenizerConfig(**cfg, bottleneck_norm=False))
    normed = CNNTokenizer(CNNTokenizerConfig(**cfg, bottleneck_norm=True))
    assert normed.state_dict().keys() == plain.state_dict().keys()  # no new weights
    normed.load_state_dict(plain.state_dict())
    with torch.no_grad():  # features 1,000x too large, as in a run whose bottleneck saturated
        for model in (plain, normed):
            model.encoder[-2 if model is plain else -3].weight.mul_(1000)
        video = torch.randint(0, 256, (4, 1, 16, 16, 3), dtype=torch.uint8)
        saturated = [(m.encode(video).abs() > 0.99).float().mean() for m in (plain, normed)]
    assert saturated[0] > 0.9 and saturated[1] < 0.3


def test_tokenizers_saved_before_bottleneck_norm_load_without_it(tmp_path) -> None:
    from world_models.model_io import load_model, save_model
    from world_models.tokenizer_cnn import ChannelRMSNorm

    new = CNNTokenizer(CNNTokenizerConfig(image_size=16, base_channels=8, num_downsamples=2))
    assert new.config.bottleneck_norm  # new tokenizers normalise their bottleneck
    save_model(new, tmp_path)
    assert load_model(tmp_path).config.bottleneck_norm
    spec = json.loads((tmp_path / "config.json").read_text())
    del spec["config"]["bottleneck_norm"]  # a config written before the setting existed
    (tmp_path / "config.json").write_text(json.dumps(spec))
    old = load_model(tmp_path)
    assert not old.config.bottleneck_norm
    assert not any(isinstance(m, ChannelRMSNorm) for m in old.encoder)
