"""Evaluating a world-model bundle on held-out episodes (`dreamgym eval-world-model`).

Open-loop, action-conditioned rollouts from real context: for each held-out window the model
sees `context` real frames and imagines the next `horizon` from the recorded actions. Frames
are scored per horizon (PSNR, SSIM, perceptual distance, and PSNR over only the pixels that
changed since the last context frame: the movers, which a whole-frame PSNR hides when they are
small) beside the hold-last-frame baseline in the same run, and the reward and continue heads
against the recorded rewards and terminations.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from data_collection.sequence_view import SequenceView, split_episodes
from world_models.atomic import save_figure
from world_models.bundle import Bundle, load_bundle
from world_models.checkpoint import write_json
from world_models.metrics import changed_psnr, perceptual, psnr, ssim
from world_models.tokenizer import video_to_float
from world_models.world_model import Imagined, WorldModel


def _windows(view: SequenceView, count: int, length: int, seed: int) -> dict[str, np.ndarray]:
    return view.sample(count, length, np.random.default_rng(seed))


def _horizon_means(values: torch.Tensor) -> list[float | None]:
    """Per-frame values (B, T) -> their mean per horizon over the windows, skipping NaN (a
    changed-pixel PSNR where nothing changed); None where every window was NaN."""
    return [None if v != v else v for v in values.nanmean(0).tolist()]


CONTINUOUS_REWARD_VALUES = 64  # more distinct reward values than this: a dense, real reward


def _imagine(
    bundle: Bundle,
    tensors: dict[str, torch.Tensor],
    action: torch.Tensor,
    context: int,
    num_steps: int,
    seed: int,
    copy_threshold: float | None,
    bar: tqdm,
) -> Imagined:
    """Open-loop rollout of the windows from `context` real frames, driven by `action`, with
    static-pixel copy above `copy_threshold` (None: every frame decoded alone); `bar` counts
    the imagined frames."""
    tokenizer, dynamics = bundle.models["tokenizer"], bundle.models["dynamics"]
    model = WorldModel(tokenizer, dynamics, num_steps, copy_threshold)
    generator = torch.Generator(tensors["obs"].device).manual_seed(seed)
    return model.imagine(tensors["obs"], action, tensors["labeled"], context, generator, bar.update)


def reward_tolerance(rewards: np.ndarray) -> float:
    """Half the smallest gap between distinct recorded reward values (at most 0.05 of their
    range), so a prediction counts as right when it is nearer the true value than any other.
    A dense real-valued reward (Moving MNIST) has no such gap: there it is 0.05 of the range."""
    values = np.unique(np.round(rewards, 6))
    if len(values) < 2:
        return 0.05
    span = float(values[-1] - values[0])
    if len(values) > CONTINUOUS_REWARD_VALUES:
        return 0.05 * span
    return min(float(np.diff(values).min()) / 2, 0.05 * span)


@torch.no_grad()
def evaluate_world_model(
    bundle_path: str | os.PathLike,
    dataset_id: str,
    data_dir: str | None = None,
    context: int = 4,
    horizon: int = 16,
    windows: int = 64,
    num_steps: tuple[int, ...] = (4,),
    holdout: float | None = None,
    device: str = "cpu",
    seed: int = 0,
    perceptual_backend: str = "stlpips",
    progress: bool = False,
) -> dict[str, Any]:
    """Per-horizon PSNR/SSIM/perceptual distance of dream vs hold-last-frame, and head
    accuracies, as a dict. perceptual_backend: "stlpips" (offline), "lpips" or "none" (skip).
    progress: a bar of the imagined frames.
    holdout: the share of episodes held out (None: the one the bundle's dynamics trained with
    when it trained on `dataset_id`, else 0.1)."""
    for name, value in (("context", context), ("horizon", horizon), ("windows", windows)):
        if value < 1:
            raise ValueError(f"--{name} must be >= 1, got {value}")
    bundle = load_bundle(bundle_path, device)
    full = SequenceView(dataset_id, data_dir=data_dir)
    full.require_images("eval-world-model")
    bundle.check_spaces(f"dataset {dataset_id}", full.observation_space, full.action_space)
    recorded = bundle.holdout(dataset_id)
    if holdout is None:
        holdout = 0.1 if recorded is None else recorded
    if recorded == 0:
        raise ValueError(
            f"the bundle's dynamics trained on every episode of {dataset_id}: there are no "
            "held-out episodes to score; evaluate on another dataset of the same env"
        )
    _, test_ids = split_episodes(full.num_episodes, holdout, seed=0)
    view = SequenceView(dataset_id, data_dir=data_dir, episodes=test_ids or None)
    batch = _windows(view, windows, context + horizon, seed)
    tensors = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
    real = video_to_float(tensors["obs"][:, context:])  # (B, horizon, H, W, C)
    hold = video_to_float(tensors["obs"][:, context - 1 : context]).expand_as(real)

    def frame_metrics(frames: torch.Tensor) -> dict[str, list[float | None]]:
        metrics = {
            "psnr": psnr(frames, real),
            "ssim": ssim(frames, real),
            "changed_psnr": changed_psnr(frames, real, hold),
        }
        if perceptual_backend != "none":
            metrics["perceptual"] = perceptual(frames, real, backend=perceptual_backend)
        return {name: _horizon_means(values) for name, values in metrics.items()}

    results: dict[str, Any] = {
        "bundle": str(bundle_path),
        "dataset": dataset_id,
        "held_out_episodes": len(test_ids),
        "windows": windows,
        "context": context,
        "horizon": list(range(1, horizon + 1)),
        "perceptual_backend": perceptual_backend,
        "hold_last_frame": frame_metrics(hold),
    }
    tol = reward_tolerance(batch["reward"])
    true_reward = tensors["reward"][:, context:].float()
    true_cont = ~tensors["is_terminal"][:, context:]
    known = tensors["labeled"][:, context:].bool()  # unlabeled video has no rewards to score
    dreams = {}
    copy = bundle.sampling.get("copy_threshold")
    rollouts = len(num_steps) + (windows > 1)  # and one driven by other windows' actions
    bar = tqdm(total=rollouts * horizon, desc="imagined frames", unit="frame", disable=not progress)
    for k in num_steps:
        out = _imagine(bundle, tensors, tensors["action"], context, k, seed, copy, bar)
        dreams[k] = out.frame
        results[f"dream_k{k}"] = frame_metrics(out.frame)
        if out.decoded is not None and k == num_steps[0]:  # copied: also score it decoded alone
            results["decoded_alone"] = {"num_steps": k} | frame_metrics(out.decoded)
            results["copy_threshold"] = copy
        if known.any():
            error = (out.reward - true_reward).abs()[known]
            results[f"dream_k{k}"] |= {
                "reward_accuracy": (error <= tol).float().mean().item(),
                "reward_mae": error.mean().item(),
                "continue_accuracy": ((out.cont > 0.5) == true_cont)[known].float().mean().item(),
            }
    results["reward_tolerance"] = tol
    # Does the model use its actions? Each window's context, driven on by another window's
    # recorded actions: a model that ignores its actions scores as well as with the right ones.
    if windows > 1:
        results["other_actions"] = _other_actions(
            bundle, tensors, real, hold, context, num_steps[0], seed, copy, bar
        )
    bar.close()
    results["_frames"] = {"real": real, "dream": dreams[num_steps[0]], "hold": hold}
    return results


def _other_actions(
    bundle: Bundle,
    tensors: dict[str, torch.Tensor],
    real: torch.Tensor,
    hold: torch.Tensor,
    context: int,
    k: int,
    seed: int,
    copy: float | None,
    bar: tqdm,
) -> dict[str, Any]:
    """PSNR per horizon (whole frame, and over changed pixels) of the dream driven by the next
    window's actions after the context."""
    other = torch.cat(
        (tensors["action"][:, :context], tensors["action"][:, context:].roll(1, 0)), 1
    )
    frames = _imagine(bundle, tensors, other, context, k, seed, copy, bar).frame
    return {
        "num_steps": k,
        "psnr": _horizon_means(psnr(frames, real)),
        "changed_psnr": _horizon_means(changed_psnr(frames, real, hold)),
    }


def write_report(results: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write `metrics.json`, `psnr.png` and `real_vs_dream.mp4` into `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments.videos import write_video

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = results.pop("_frames")
    write_json(out_dir / "metrics.json", results)
    metrics = [m for m in ("psnr", "ssim", "perceptual") if m in results["hold_last_frame"]]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4))
    for ax, metric in zip(axes, metrics, strict=True):
        ax.plot(
            results["horizon"], results["hold_last_frame"][metric], "k--", label="hold last frame"
        )
        for key in (k for k in results if k.startswith("dream_k")):
            ax.plot(
                results["horizon"], results[key][metric], label=key.replace("dream_k", "dream K=")
            )
        if "decoded_alone" in results:
            alone = results["decoded_alone"]
            label = f"dream K={alone['num_steps']}, no copy"
            ax.plot(results["horizon"], alone[metric], ":", label=label)
        ax.set_xlabel("horizon (frames)")
        ax.set_ylabel(metric.upper() if metric != "perceptual" else "perceptual distance")
        ax.legend()
    fig.tight_layout()
    save_figure(fig, out_dir / "psnr.png")
    plt.close(fig)
    pairs = torch.cat([frames["real"][:4], frames["dream"][:4]], dim=3)  # (4, T, H, 2W, C)
    video = (pairs.flatten(0, 1).clamp(0, 1) * 255).round().byte().cpu().numpy()
    write_video(video, out_dir / "real_vs_dream.mp4", fps=4)
    return out_dir


def _mean(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{np.mean(known):.3f}" if known else "-"


def summary_table(results: dict[str, Any], every: int = 4) -> str:
    """A Markdown table of PSNR per horizon (every `every`-th frame), the mean PSNR over changed
    pixels, mean SSIM and perceptual distance (when measured), and head accuracies; then, for a
    bundle with static-pixel copy, the dream decoded without it; last, the dream driven by
    other windows' actions (PSNRs only)."""
    cols = [h for h in results["horizon"] if h == 1 or h % every == 0]
    rows = [("hold last frame", results["hold_last_frame"])]
    rows += [
        (k.replace("dream_k", "dream K="), v) for k, v in results.items() if k.startswith("dream_k")
    ]
    if "decoded_alone" in results:
        alone = results["decoded_alone"]
        rows.append((f"dream K={alone['num_steps']}, no static-pixel copy", alone))
    if "other_actions" in results:
        other = results["other_actions"]
        rows.append((f"dream K={other['num_steps']}, other windows' actions", other))
    labels = {"changed_psnr": "changed PSNR", "ssim": "SSIM", "perceptual": "perceptual"}
    means = [m for m in labels if m in rows[0][1]]
    head = (
        "| model | "
        + " | ".join(f"PSNR@{h}" for h in cols)
        + "".join(f" | {labels[m]} mean" for m in means)
        + " | reward acc | cont acc |"
    )
    lines = [head, "|" + "---|" * (len(cols) + len(means) + 3)]
    for name, r in rows:
        psnrs = " | ".join(f"{r['psnr'][h - 1]:.2f}" for h in cols)
        avgs = " | ".join(_mean(r[m]) if m in r else "-" for m in means)
        rew = f"{r['reward_accuracy']:.3f}" if "reward_accuracy" in r else "-"
        cont = f"{r['continue_accuracy']:.3f}" if "continue_accuracy" in r else "-"
        lines.append(f"| {name} | {psnrs} | {avgs} | {rew} | {cont} |")
    return "\n".join(lines)
