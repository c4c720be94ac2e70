"""The Moving MNIST video prediction benchmark (`dreamgym eval-video-prediction`).

Protocol (Srivastava et al. 2015; OpenSTL): 20-frame sequences, `context` = 10 frames in,
`horizon` = 10 frames out, scored per predicted frame: MSE as the SUM over pixels of the squared
error with pixels in [0, 1], PSNR (peak 1) and SSIM (`world_models.metrics`), each averaged over
sequences per horizon. Frames are scored at the masked video model's image size (64x64 canvases
shrunk by block means, as MovingMNIST-v0's `image_size` does), so the MSE sum runs over that
many pixels: at 32x32 it is over 1,024 pixels, not the 4,096 of the published 64x64 tables.

Sources: "generated" (sequences of the held-out TEST digits from
`envs.moving_mnist.generate_sequences`, with the ego digit's actions, moving as the model's
training data did: its config's `data_max_speed` and `data_speed`, recorded by
`train_masked_video`; models saved before that record have the defaults 3 and (1, 2)) and, when
a path is given, "mnist_test_seq" (the standard file: 20 frames, no actions, so every action is
unlabeled).
Methods, in one run on the same sequences: the masked video model, hold-last-frame, and
optionally a Dreamer-style bundle (`WorldModel.imagine`, frames resized to and from its size).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from world_models.masked_video import MaskedVideoModel, resize_frames
from world_models.masked_video_sampler import SamplingSettings, rollout
from world_models.metrics import mse, psnr, ssim

METRICS = ("mse", "psnr", "ssim")
MNIST_TEST_SEQ_FRAMES = 20  # frames per sequence of mnist_test_seq.npy
Data = dict[str, torch.Tensor]  # obs (B, T, S, S, C) uint8, action (B, T, ...), labeled (B, T)


def load_masked_video(path: str | os.PathLike, device: str = "cpu") -> MaskedVideoModel:
    """A masked video model from a bundle folder (`models.masked_video`) or a model folder."""
    from world_models.runs import load_trained

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} is not a model or bundle folder (no config.json); train one with "
            "`dreamgym train-dynamics --kind masked-video`"
        )
    model = load_trained(path, "masked_video", device)
    if not isinstance(model, MaskedVideoModel):
        raise ValueError(f"{path} holds no masked video model (kind 'masked-video')")
    return model


def benchmark_data(
    num: int,
    image_size: int,
    seed: int = 0,
    mnist_test_seq: str | os.PathLike | None = None,
    length: int = 20,
    max_speed: float = 3.0,
    speed: tuple[float, float] = (1.0, 2.0),
) -> dict[str, Data]:
    """{"generated": test-digit sequences with actions (motion as in `generate_sequences`),
    "mnist_test_seq": the first `num` of the standard file (when given), unlabeled}, frames at
    `image_size`."""
    from envs.moving_mnist import load_mnist_test_seq
    from world_models.train_masked_video import moving_mnist_windows

    _check_length(length, mnist_test_seq)
    gen = moving_mnist_windows(num, length, image_size, "test", seed, max_speed, speed)
    sources = {"generated": {k: torch.from_numpy(v) for k, v in gen.items()}}
    if mnist_test_seq is not None:
        frames = torch.from_numpy(load_mnist_test_seq(mnist_test_seq, num)[:, :length].copy())
        n, t = frames.shape[:2]
        sources["mnist_test_seq"] = {
            "obs": resize_frames(frames, image_size),
            "action": torch.zeros(n, t, 2),
            "labeled": torch.zeros(n, t, dtype=torch.bool),
        }
    return sources


def _check_length(length: int, mnist_test_seq: str | os.PathLike | None) -> None:
    if mnist_test_seq is not None and length > MNIST_TEST_SEQ_FRAMES:
        raise ValueError(
            f"context + horizon = {length} frames, but mnist_test_seq has "
            f"{MNIST_TEST_SEQ_FRAMES}: lower --context / --horizon or drop --mnist-test-seq"
        )


def hold_last_frame(frames: torch.Tensor, context: int) -> torch.Tensor:
    """The baseline: the last context frame repeated over the rest of frames (B, T, ...)."""
    return frames[:, context - 1 : context].expand_as(frames[:, context:]).clone()


def score(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frame metrics (B, T) of two videos (B, T, H, W, C) uint8 or float in [0, 1]."""
    return {
        "mse": mse(pred, target, reduction="sum"),
        "psnr": psnr(pred, target),
        "ssim": ssim(pred, target),
    }


def summarise(values: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Per-frame metrics -> {metric: per-horizon list, "mean": {metric: over the horizon}}."""
    out: dict[str, Any] = {k: v.float().mean(0).tolist() for k, v in values.items()}
    out["mean"] = {k: float(np.mean(out[k])) for k in values}
    return out


def _chunks(data: Data, size: int):
    for i in range(0, data["obs"].shape[0], size):
        yield {k: v[i : i + size] for k, v in data.items()}


@torch.no_grad()
def predict_masked_video(
    model: MaskedVideoModel,
    data: Data,
    context: int,
    settings: SamplingSettings,
    batch_size: int = 64,
    seed: int = 0,
    use_actions: bool = True,
    bar: tqdm | None = None,
) -> torch.Tensor:
    """Open-loop predictions (B, T - context, S, S, C) uint8 of the masked video model;
    `bar` counts the predicted sequences."""
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(seed)
    out = []
    for part in _chunks(data, batch_size):
        labeled = part["labeled"] if use_actions else torch.zeros_like(part["labeled"])
        out.append(
            rollout(
                model,
                part["obs"].to(device),
                part["action"].to(device),
                labeled.to(device),
                context,
                settings,
                generator,
            ).cpu()
        )
        if bar is not None:
            bar.update(part["obs"].shape[0])
    return torch.cat(out)


@torch.no_grad()
def predict_dynamics(
    bundle_path: str | os.PathLike,
    data: Data,
    context: int,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "cpu",
    bar: tqdm | None = None,
) -> torch.Tensor:
    """Open-loop predictions (B, T - context, S, S, C) uint8 of a Dreamer-style bundle, whose
    frames are resized to its observation size and back; `bar` counts the predicted sequences."""
    from world_models.bundle import load_bundle
    from world_models.world_model import WorldModel

    bundle = load_bundle(bundle_path, device)
    if "dynamics" not in bundle.models or "tokenizer" not in bundle.models:
        raise ValueError(f"--bundle {bundle_path} is not a tokenizer + dynamics bundle")
    shape = bundle.observation_space.shape
    if shape[-1] != data["obs"].shape[-1]:
        raise ValueError(f"--bundle {bundle_path} has {shape[-1]} channels, the frames 1")
    steps = bundle.config.get("sampling", {}).get("num_steps")  # None: the model's own
    model = WorldModel(bundle.models["tokenizer"], bundle.models["dynamics"], num_steps=steps)
    generator = torch.Generator(device).manual_seed(seed)
    out = []
    for part in _chunks(data, batch_size):
        obs = resize_frames(part["obs"], shape[0]).to(device)
        frames = model.imagine(
            obs, part["action"].to(device), part["labeled"].to(device), context, generator
        ).frame
        frames = (frames.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        out.append(resize_frames(frames, data["obs"].shape[-2]))
        if bar is not None:
            bar.update(part["obs"].shape[0])
    return torch.cat(out)


def evaluate_video_prediction(
    model_path: str | os.PathLike,
    num_sequences: int = 256,
    context: int = 10,
    horizon: int = 10,
    mnist_test_seq: str | os.PathLike | None = None,
    bundle: str | os.PathLike | None = None,
    sampling: dict[str, float | bool | None] | None = None,
    without_actions: bool = False,
    score_size: int | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Per-horizon MSE / PSNR / SSIM of every method on every source, as a dict (the frames of
    the first sequences under "_frames" for the report's video). progress: a bar of the
    predicted sequences.

    score_size: score at this frame size instead of the model's: the model's predictions are
    resized (nearest neighbour when growing) and compared with frames made at that size, and
    hold-last-frame holds a frame of that size (e.g. 64 for the published 64x64 protocol).
    sampling: `SamplingSettings` overrides; a temperature needs median=False (under median
    decoding, the default, no level is drawn).
    """
    if context < 1 or horizon < 1:
        raise ValueError(f"context and horizon must be >= 1, got {context} and {horizon}")
    length = context + horizon
    _check_length(length, mnist_test_seq)
    model = load_masked_video(model_path, device)
    sampling = sampling or {}
    settings = SamplingSettings.from_model(model, **sampling)
    if settings.median and sampling.get("temperature") is not None:
        raise ValueError(
            "a temperature does nothing under median decoding (each pixel takes its median "
            "level, nothing is drawn): add --decode sample (median=False) to draw levels"
        )
    c = model.config
    size, motion = c.image_size, (c.data_max_speed, tuple(c.data_speed))
    score_size = score_size or size
    data = benchmark_data(num_sequences, size, seed, mnist_test_seq, length, *motion)
    truth = data
    if score_size != size:
        truth = benchmark_data(num_sequences, score_size, seed, mnist_test_seq, length, *motion)
    results: dict[str, Any] = {
        "model": str(model_path),
        "bundle": None if bundle is None else str(bundle),
        "image_size": score_size,
        "model_image_size": size,
        "context": context,
        "horizon": list(range(1, horizon + 1)),
        "data": {"max_speed": motion[0], "speed": list(motion[1])},
        "sampling": dataclasses.asdict(settings),
        "sources": {},
        "_frames": {},
    }

    def predictors(name: str) -> int:  # predictions made per sequence of a source
        return 1 + (bundle is not None) + (without_actions and name == "generated")

    total = sum(d["obs"].shape[0] * predictors(name) for name, d in data.items())
    bar = tqdm(total=total, desc="predicted sequences", unit="seq", disable=not progress)
    for name, source in data.items():
        target = truth[name]
        real = target["obs"][:, context:]
        preds = {
            "masked_video": predict_masked_video(
                model, source, context, settings, batch_size, seed, bar=bar
            )
        }
        if without_actions and name == "generated":
            preds["masked_video_no_actions"] = predict_masked_video(
                model, source, context, settings, batch_size, seed, use_actions=False, bar=bar
            )
        preds = {k: resize_frames(v, score_size) for k, v in preds.items()}
        preds["hold_last_frame"] = hold_last_frame(target["obs"], context)
        if bundle is not None:
            preds["dynamics"] = predict_dynamics(
                bundle, target, context, batch_size, seed, device, bar
            )
        results["sources"][name] = {
            "sequences": real.shape[0],
            "methods": {k: summarise(score(v, real)) for k, v in preds.items()},
        }
        results["_frames"][name] = {
            "real": target["obs"][:4],
            **{k: v[:4] for k, v in preds.items()},
        }
    bar.close()
    return results


def video_grid(frames: dict[str, torch.Tensor], context: int) -> np.ndarray:
    """(T, rows * (S + 1), cols * (S + 1), C) uint8: one row per method (the real video
    first), one column per sequence; predicted rows show the real context frames first."""
    real = frames["real"]  # (B, T, S, S, C)
    rows = [real] + [torch.cat([real[:, :context], v], 1) for k, v in frames.items() if k != "real"]
    grid = torch.stack(rows)  # (R, B, T, S, S, C)
    grid = torch.nn.functional.pad(grid, (0, 0, 0, 1, 0, 1), value=128)  # a grey rule
    r, b, t, s1, _, c = grid.shape
    return grid.permute(2, 0, 3, 1, 4, 5).reshape(t, r * s1, b * s1, c).numpy()


def summary_table(results: dict[str, Any]) -> str:
    """Markdown: per source, each method's PSNR / SSIM per horizon and its means."""
    lines = []
    for name, source in results["sources"].items():
        lines += [f"### {name} ({source['sequences']} sequences, {results['image_size']}px)", ""]
        cols = results["horizon"]
        lines.append("| method | metric | " + " | ".join(f"t+{h}" for h in cols) + " | mean |")
        lines.append("|" + "---|" * (len(cols) + 3))
        for method, r in source["methods"].items():
            for metric in METRICS:
                fmt = "{:.3f}" if metric == "ssim" else "{:.2f}"
                cells = " | ".join(fmt.format(v) for v in r[metric])
                mean = fmt.format(r["mean"][metric])
                lines.append(f"| {method} | {metric} | {cells} | {mean} |")
        lines.append("")
    return "\n".join(lines)


def write_report(results: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write metrics.json, report.md, metrics.png and a predictions_<source>.mp4 per source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments.videos import write_video
    from world_models.atomic import atomic_write_text, save_figure
    from world_models.checkpoint import write_json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = results.pop("_frames")
    write_json(out_dir / "metrics.json", results)
    atomic_write_text(out_dir / "report.md", summary_table(results))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, metric in zip(axes, METRICS, strict=True):
        for i, (name, source) in enumerate(results["sources"].items()):
            style = ("-", "--", ":", "-.")[i % 4]
            for method, r in source["methods"].items():
                ax.plot(
                    results["horizon"], r[metric], style, marker="o", label=f"{method} ({name})"
                )
        ax.set_xlabel("horizon (frames)")
        ax.set_ylabel(metric.upper() + (" (sum over pixels)" if metric == "mse" else ""))
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out_dir / "metrics.png")
    plt.close(fig)
    for name, source_frames in frames.items():
        grid = video_grid(source_frames, results["context"])
        write_video(grid, out_dir / f"predictions_{name}.mp4", fps=4, scale=4)
    return out_dir
