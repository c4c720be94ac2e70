"""Compare world-model bundles on the same held-out windows, paired window by window.

Each bundle (optionally with dynamics settings changed for sampling, e.g. `guidance=1` or
`tau_ctx=0.8`, or its static-pixel copy set, `copy_threshold=0.1`, or removed,
`copy_threshold=null`) is scored by `world_models.evaluate.evaluate_world_model` on the same windows
for every seed; the first bundle is the reference. Per bundle it prints the mean PSNR over the
horizon (whole frames, and over the pixels that changed since the last context frame), over
its last 4 frames (where errors have piled up), the changed-pixel drop when driven by other
windows' actions, reward accuracy, and the paired differences from the reference with their 95%
normal intervals over windows:

    python -m experiments.bench.paired_eval --dataset dreamgym/doorkey-mixed-v0 \\
        envs/bundles/minigrid-doorkey-8x8 runs/x/bundle runs/x/bundle:guidance=1 \\
        [--seeds 1 2 3] [--windows 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def parse_spec(spec: str) -> tuple[Path, dict[str, Any]]:
    """ "PATH" or "PATH:KEY=VALUE,KEY=VALUE" -> (bundle folder, dynamics config overrides)."""
    path, _, settings = spec.partition(":")
    overrides = {}
    for item in filter(None, settings.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"bad setting {item!r} in {spec!r}: expected KEY=VALUE")
        overrides[key] = json.loads(value)
    return Path(path), overrides


SAMPLING_KEYS = ("copy_threshold",)  # bundle sampling settings; other keys: dynamics config


def with_overrides(bundle: Path, overrides: dict[str, Any], folder: Path) -> Path:
    """A bundle in `folder` linking `bundle`'s files, its dynamics config (or for
    SAMPLING_KEYS its sampling settings; null removes one) changed by `overrides` (checked by
    loading it)."""
    from world_models.dynamics import DynamicsConfig

    config = json.loads((bundle / "config.json").read_text())
    dynamics = config["models"]["dynamics"]["config"]
    sampling = {k: v for k, v in overrides.items() if k in SAMPLING_KEYS}
    overrides = {k: v for k, v in overrides.items() if k not in SAMPLING_KEYS}
    DynamicsConfig.from_dict({**dynamics, **overrides})
    dynamics.update(overrides)
    config["sampling"] = {
        k: v for k, v in {**config.get("sampling", {}), **sampling}.items() if v is not None
    }
    folder.mkdir(parents=True)
    for file in bundle.iterdir():
        if file.is_file() and file.name != "config.json":
            (folder / file.name).symlink_to(file.resolve())
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


LATE_FRAMES = 4  # the last frames of the horizon, where a rollout's errors have piled up


def per_window(bundle: Path, dataset: str, windows: int, seed: int) -> dict[str, Any]:
    """Per-window means over the horizon (whole and changed-pixel PSNR), over its last
    LATE_FRAMES frames (whole), and summary figures."""
    from world_models.evaluate import evaluate_world_model
    from world_models.metrics import changed_psnr, psnr

    results = evaluate_world_model(
        bundle, dataset, windows=windows, perceptual_backend="none", seed=seed
    )
    frames = results["_frames"]
    per_frame = psnr(frames["dream"], frames["real"])  # (windows, horizon)
    dream, other = results["dream_k4"], results["other_actions"]["changed_psnr"]
    gaps = [a - b for a, b in zip(dream["changed_psnr"], other, strict=True) if None not in (a, b)]
    return {
        "whole": per_frame.mean(1),
        "late": per_frame[:, -LATE_FRAMES:].mean(1),
        "changed": torch.nanmean(changed_psnr(frames["dream"], frames["real"], frames["hold"]), 1),
        "action_gap": float(np.mean(gaps)),
        "reward_accuracy": dream.get("reward_accuracy", float("nan")),  # nan: no labels
    }


def paired(values: torch.Tensor, reference: torch.Tensor) -> str:
    diff = values - reference
    diff = diff[~torch.isnan(diff)]
    half = 1.96 * diff.std().item() / math.sqrt(len(diff))
    return f"{diff.mean().item():+.2f} +- {half:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+", help="PATH or PATH:KEY=VALUE,... (first: reference)")
    parser.add_argument("--dataset", required=True, help="Minari dataset id the bundles model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--windows", type=int, default=64, help="held-out windows per seed")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, spec in enumerate(args.bundles):
            try:
                bundle, overrides = parse_spec(spec)
                if overrides:
                    bundle = with_overrides(bundle, overrides, Path(tmp) / str(i))
            except (ValueError, OSError) as error:
                parser.error(f"{spec}: {error}")
            runs = [per_window(bundle, args.dataset, args.windows, s) for s in args.seeds]
            rows[spec] = {
                **{k: torch.cat([r[k] for r in runs]) for k in ("whole", "late", "changed")},
                "action_gap": float(np.mean([r["action_gap"] for r in runs])),
                "reward_accuracy": float(np.mean([r["reward_accuracy"] for r in runs])),
            }
            print(f"scored {spec}", flush=True)
    ref = rows[args.bundles[0]]
    print(
        f"| bundle | PSNR | last {LATE_FRAMES} frames | changed-pixel PSNR "
        "| other-actions drop (changed) | reward acc "
        f"| PSNR vs first | last {LATE_FRAMES} vs first | changed vs first |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for spec, row in rows.items():
        print(
            f"| {spec} | {row['whole'].mean():.2f} | {row['late'].mean():.2f} "
            f"| {torch.nanmean(row['changed']):.2f} | {row['action_gap']:.2f} "
            f"| {row['reward_accuracy']:.3f} | {paired(row['whole'], ref['whole'])} "
            f"| {paired(row['late'], ref['late'])} | {paired(row['changed'], ref['changed'])} |"
        )


if __name__ == "__main__":
    main()
