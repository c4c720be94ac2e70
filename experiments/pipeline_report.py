"""`report.md` of a pipeline run: stage timings, the data, the world model's scores and the
agents' real-env scores (Markdown tables, PNG plots, GIFs beside the MP4s), with the same
numbers and the report's text in TensorBoard (`<run>/tensorboard/`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from experiments.pipeline import read_marker
from experiments.pipeline_config import SB3
from experiments.pipeline_stages import STAGE_NAMES, policy_names
from world_models.atomic import atomic_write_text, save_figure
from world_models.checkpoint import read_json

BASELINE_NAMES = {"expert": "scripted expert", "random": "uniform random", "noisy": "noisy expert"}


def describe(name: str, config: dict[str, Any]) -> str:
    """How a scored policy was made, e.g. "PPO in the dream"."""
    if name in BASELINE_NAMES:
        return BASELINE_NAMES[name]
    agent = next(a for a in config["policies"] if a["name"] == name)
    if agent["algo"] in SB3:
        where = "dream" if agent["train_in"] == "dream" else "real env"
        return f"{agent['algo'].upper()} in the {where}"
    if agent["algo"] == "bc":
        demos = agent.get("demos")
        if demos is None:
            return "diffusion policy, BC on the dataset"
        return f"diffusion policy, BC on {demos['episodes']} {demos['policy']} episodes"
    return f"diffusion policy, imagination in the dream from {agent['init']}"


def _ci(value: float, ci: list[float] | None, percent: bool = False) -> str:
    """ "0.500 [0.250, 0.750]" (or a percentage); no bounds when there is no interval."""
    scale, unit, digits = (100, "%", 1) if percent else (1, "", 3)
    bounds = "" if ci is None else f" [{scale * ci[0]:.{digits}f}, {scale * ci[1]:.{digits}f}]"
    return f"{scale * value:.{digits}f}{unit}{bounds}"


def score_table(scores: dict[str, dict[str, Any]], config: dict[str, Any]) -> str:
    """Markdown: one row per scored policy, success rate and return with 95% CIs."""
    lines = [
        "| policy | made by | success [95% CI] | return [95% CI] | mean length |",
        "|---|---|---|---|---|",
    ]
    for name, r in scores.items():
        success = _ci(r["success_rate"], r["success_ci95"], True) if "success_rate" in r else "-"
        ret = _ci(r["mean_return"], r["return_ci95"])
        lines.append(
            f"| {name} | {describe(name, config)} | {success} | {ret} | {r['mean_length']:.1f} |"
        )
    return "\n".join(lines)


def _markers(run_dir: Path) -> dict[str, dict[str, Any]]:
    found = {name: read_marker(run_dir, name) for name in STAGE_NAMES}
    return {k: m for k, m in found.items() if m and m.get("status") == "done"}


def _scores(
    run_dir: Path, config: dict[str, Any], markers: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each scored policy's results, in config order."""
    if "score" not in markers:
        return {}
    outputs = markers["score"]["outputs"]
    return {name: read_json(run_dir / outputs[name]) for name in policy_names(config)}


def _world_model(run_dir: Path, markers: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    if "eval_world_model" not in markers:
        return None
    return read_json(run_dir / markers["eval_world_model"]["outputs"]["metrics"])


def summary_tables(run_dir: str | Path) -> str:
    """The world-model table and the score table of a finished run, as Markdown."""
    from world_models.evaluate import summary_table

    run_dir = Path(run_dir)
    config, markers = read_json(run_dir / "config.json"), _markers(run_dir)
    parts = []
    world_model = _world_model(run_dir, markers)
    if world_model:
        parts.append(f"World model (held-out, open loop):\n\n{summary_table(world_model)}")
    scores = _scores(run_dir, config, markers)
    if scores:
        parts.append(f"Policies in {config['env']}:\n\n{score_table(scores, config)}")
    return "\n\n".join(parts)


def _score_plot(scores: dict[str, dict[str, Any]], path: Path) -> None:
    """Bars of mean return (and success rate when the env reports it) with 95% CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(scores)
    metrics = [("mean_return", "return_ci95", "mean return")]
    if all("success_rate" in r for r in scores.values()):
        metrics.append(("success_rate", "success_ci95", "success rate"))
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(5 * len(metrics), 0.5 * len(names) + 1.5), squeeze=False
    )
    for ax, (key, ci, label) in zip(axes[0], metrics, strict=True):
        values = np.array([scores[n][key] for n in names])
        bounds = np.array([scores[n][ci] or [scores[n][key]] * 2 for n in names])
        err = np.stack([values - bounds[:, 0], bounds[:, 1] - values]).clip(0)
        ax.barh(names, values, xerr=err, color="tab:blue", capsize=3)
        ax.invert_yaxis()
        ax.set_xlabel(f"{label} (95% CI)")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def _gif(mp4: Path, gif: Path, max_frames: int = 120, stride: int = 2) -> Path | None:
    """A GIF of an MP4's first `max_frames` frames at 1/`stride` size (Markdown shows GIFs
    inline, not MP4s); None when there is no MP4."""
    import imageio.v2 as imageio

    from experiments.videos import write_video

    if not mp4.is_file():
        return None
    with imageio.get_reader(mp4) as reader:
        fps = int(round(reader.get_meta_data().get("fps", 10)))
        frames = [f[::stride, ::stride] for _, f in zip(range(max_frames), reader, strict=False)]
    return write_video(np.stack(frames), gif, fps=fps, scale=1)


def _tensorboard(
    run_dir: Path,
    world_model: dict[str, Any] | None,
    scores: dict[str, dict[str, Any]],
    text: str,
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run_dir / "tensorboard"))
    if world_model:
        for key in ("hold_last_frame", *(k for k in world_model if k.startswith("dream_k"))):
            for h, value in zip(world_model["horizon"], world_model[key]["psnr"], strict=True):
                writer.add_scalar(f"world_model/psnr_{key}", value, h)
    for name, r in scores.items():
        writer.add_scalar(f"score/mean_return/{name}", r["mean_return"], 0)
        if "success_rate" in r:
            writer.add_scalar(f"score/success_rate/{name}", r["success_rate"], 0)
    writer.add_text("report", text)
    writer.close()


def write_pipeline_report(
    run_dir: Path, config: dict[str, Any], markers: dict[str, dict[str, Any]]
) -> Path:
    """Write `report.md` (and `report/`, `tensorboard/`) from the stages' outputs."""
    from world_models.evaluate import summary_table

    figures = run_dir / "report"
    scores = _scores(run_dir, config, markers)
    world_model = _world_model(run_dir, markers)
    lines = [
        f"# Pipeline report: {config['experiment']}",
        "",
        f"Real env `{config['env']}`. Run folder `{run_dir}`, settings in `config.json`. "
        f"Continue or redo part of it with `dreamgym pipeline --resume-dir {run_dir} "
        f"[--from STAGE]`; training curves: `tensorboard --logdir {run_dir}`.",
    ]
    if scores:
        lines += ["", "## Summary", "", score_table(scores, config)]
    lines += ["", "## Stages", "", "| stage | seconds | finished | outputs |", "|---|---|---|---|"]
    for name, m in markers.items():
        outputs = ", ".join(f"`{p}`" for p in list(m["outputs"].values())[:3])
        more = " ..." if len(m["outputs"]) > 3 else ""
        lines.append(f"| {name} | {m['seconds']:.1f} | {m['finished']} | {outputs}{more} |")
    if "collect" in markers:
        c, data = config["collect"], markers["collect"]["metrics"]
        lines += [
            "",
            "## Data",
            "",
            f"{data['episodes']} episodes ({data['steps']} steps) of the `{c['policy']}` policy "
            f"(epsilon {c['epsilon']}, seeds from {c['seed']}): dataset `{data['dataset_id']}` "
            f"in `{markers['collect']['outputs']['dataset']}`.",
        ]
    lines += ["", "## World model", ""]
    if "tokenizer" in markers:
        t = markers["tokenizer"]["metrics"]
        lines.append(
            f"Tokenizer ({config['tokenizer']['kind']}): held-out PSNR {t['psnr']:.2f} dB, "
            f"MSE {t['mse']:.5f}. "
        )
    if "dynamics" in markers:
        bundle = markers["dynamics"]["outputs"]["bundle"]
        lines.append(f"Bundle `{bundle}`: `gym.make('Dream-v0', bundle='{run_dir / bundle}')`.")
    if world_model:
        e = markers["eval_world_model"]["outputs"]
        gif = _gif(run_dir / e["video"], figures / "real_vs_dream.gif")
        lines += [
            "",
            f"{world_model['windows']} held-out windows: {world_model['context']} real frames, "
            f"then {len(world_model['horizon'])} imagined from the recorded actions.",
            "",
            summary_table(world_model),
            "",
            f"![PSNR, SSIM and perceptual distance per horizon]({e['plot']})",
        ]
        if gif:
            lines += [
                "",
                f"Real (left) and dream (right): ![real vs dream](report/{gif.name}) "
                f"([MP4]({e['video']}))",
            ]
    if scores:
        _score_plot(scores, figures / "scores.png")
        s = config["score"]
        cap = f", at most {s['max_steps']} steps" if s["max_steps"] else ""
        if s["temperature"]:
            cap += f"; policies draw their actions at temperature {s['temperature']}"
        lines += [
            "",
            "## Policies in the real env",
            "",
            f"{s['episodes']} seeded episodes each{cap}.",
            "",
            "![scores](report/scores.png)",
            "",
            "| policy | best episode | videos |",
            "|---|---|---|",
        ]
        for name in scores:
            folder = Path(markers["score"]["outputs"][name]).parent
            gif = _gif(run_dir / folder / "best.mp4", figures / f"{name}-best.gif")
            shown = f"![{name}](report/{gif.name})" if gif else "-"
            links = f"[best]({folder}/best.mp4), [worst]({folder}/worst.mp4)" if gif else "-"
            lines.append(f"| {name} | {shown} | {links} |")
    text = "\n".join(lines) + "\n"
    path = run_dir / "report.md"
    atomic_write_text(path, text)
    _tensorboard(run_dir, world_model, scores, text)
    return path
