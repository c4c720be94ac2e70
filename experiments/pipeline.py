"""The whole experiment in one command (`dreamgym pipeline CONFIG`), resumable stage by stage.

Stages, in order, each in its own part of the run folder `runs/<experiment>/<time>/`:

| stage | does | writes |
|---|---|---|
| collect | record the real env's policy as a Minari dataset | `data/` |
| tokenizer | train the video tokenizer | `tokenizer/` |
| dynamics | train the dynamics model; it exports the bundle | `dynamics/`, `dynamics/bundle/` |
| eval_world_model | per-horizon PSNR/SSIM, head accuracies, plot, video | `eval_world_model/` |
| policies | train agents in the dream (SB3, imagination), by BC, or in the real env | `agents/` |
| score | score every agent and the baselines in the real env | `scores/` |
| report | `report.md`, plots, GIFs, TensorBoard summaries | `report.md`, `report/` |

`config.json` holds the run's settings; a folder that holds files but no such `config.json` is
refused, so that no stage deletes files it did not write. A stage writes `stages/<name>.json`
when it starts ("running"), fails ("failed", with the error) or succeeds ("done", with its
outputs relative to the run folder). Rerunning on the same folder skips a stage whose marker
says done, whose outputs exist, whose settings (with those of the stages it needs) are unchanged
and none of whose inputs was rebuilt; `start` ("--from") reruns that stage and every later one.
An interrupted training stage with unchanged settings and inputs continues from its latest
checkpoint (the policies stage keeps the agents it finished); any other stage that runs again
first removes what it wrote before.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.arg_types import check_device
from experiments.pipeline_runs import check_run_folder
from experiments.pipeline_stages import STAGE_NAMES, STAGES, Context
from world_models.checkpoint import write_json


class StageFailed(Exception):
    """A stage raised: `stage` names it, `error` is the cause, `statuses` what ran before."""

    def __init__(self, stage: str, error: BaseException, statuses: dict[str, str]) -> None:
        super().__init__(f"stage {stage!r} failed: {type(error).__name__}: {error}")
        self.stage = stage
        self.error = error
        self.statuses = statuses


# agent settings added after runs were recorded: at these values they leave a digest as it was
LATER_AGENT_DEFAULTS = {"demos": None}


def fingerprints(config: dict[str, Any]) -> dict[str, str]:
    """A digest per stage of its settings and of the digests of the stages it needs."""
    out: dict[str, str] = {}
    for stage in STAGES:
        settings = {"env": config["env"], "experiment": config["experiment"]}
        settings["own"] = config.get(stage.name)
        if stage.name == "policies":
            settings["own"] = [_as_recorded(agent) for agent in settings["own"]]
        settings["needs"] = [out[n] for n in stage.needs]
        text = json.dumps(settings, sort_keys=True, default=str)
        out[stage.name] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


def _as_recorded(agent: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in agent.items() if LATER_AGENT_DEFAULTS.get(k, ...) != v}


def marker_path(run_dir: Path, stage: str) -> Path:
    return run_dir / "stages" / f"{stage}.json"


def read_marker(run_dir: Path, stage: str) -> dict[str, Any] | None:
    """A stage's marker, or None when it has none (or an unreadable one)."""
    path = marker_path(run_dir, stage)
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError:
        return None


def stale_reason(run_dir: Path, marker: dict[str, Any] | None, fingerprint: str) -> str | None:
    """Why a stage must run (None: its marker is valid and it can be skipped)."""
    if marker is None:
        return "not run yet"
    if marker.get("fingerprint") != fingerprint:
        return "settings changed"
    if marker.get("status") != "done":
        return "interrupted" if marker.get("status") == "running" else "failed last time"
    missing = [p for p in marker.get("outputs", {}).values() if not (run_dir / p).exists()]
    return f"output missing: {missing[0]}" if missing else None


def _relative(path: Path, run_dir: Path) -> str:
    return Path(path).resolve().relative_to(run_dir).as_posix()


def run_pipeline(
    config: dict[str, Any],
    run_dir: str | Path,
    start: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Run the stages that need to run (see the module docstring); returns {stage: "ran" or
    "skipped"}. A failing stage raises `StageFailed`; earlier stages' outputs stay. `run_dir`
    must be new, empty or a run (`FileExistsError` otherwise), and `config["device"]` exist."""
    if start is not None and start not in STAGE_NAMES:
        raise ValueError(f"unknown stage {start!r}; stages: {', '.join(STAGE_NAMES)}")
    run_dir = Path(run_dir).resolve()
    check_device(config["device"])
    check_run_folder(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", config)
    digests = fingerprints(config)
    forced = STAGE_NAMES.index(start) if start else len(STAGES)
    statuses: dict[str, str] = {}
    markers: dict[str, dict[str, Any]] = {}
    for i, stage in enumerate(STAGES):
        head = f"[{i + 1}/{len(STAGES)}] {stage.name}"
        marker = read_marker(run_dir, stage.name)
        rebuilt = [n for n in stage.needs if statuses.get(n) == "ran"]
        reason = stale_reason(run_dir, marker, digests[stage.name])
        if i >= forced:
            reason = f"--from {start}"
        elif rebuilt:  # a stage never continues a run made from the outputs it replaced
            reason = f"input rebuilt ({', '.join(rebuilt)})"
        if reason is None:
            log(f"{head}: done, skipped (finished {marker['finished']})")
            statuses[stage.name] = "skipped"
            markers[stage.name] = marker
            continue
        resume = stage.resumable and reason in ("interrupted", "failed last time")
        if not resume:
            for rel in stage.writes:
                path = run_dir / rel
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        log(f"{head}: running ({reason}{', resuming' if resume else ''})")
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        record = {"stage": stage.name, "fingerprint": digests[stage.name], "started": started}
        write_json(marker_path(run_dir, stage.name), {**record, "status": "running"})
        clock = time.perf_counter()
        try:
            outputs, metrics = stage.run(Context(run_dir, config, markers, resume, log))
            rel = {key: _relative(path, run_dir) for key, path in outputs.items()}
        except Exception as err:
            write_json(
                marker_path(run_dir, stage.name),
                {**record, "status": "failed", "error": f"{type(err).__name__}: {err}"},
            )
            statuses[stage.name] = "failed"
            raise StageFailed(stage.name, err, statuses) from err
        seconds = time.perf_counter() - clock
        markers[stage.name] = {
            **record,
            "status": "done",
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "seconds": round(seconds, 2),
            "outputs": rel,
            "metrics": metrics,
        }
        write_json(marker_path(run_dir, stage.name), markers[stage.name])
        statuses[stage.name] = "ran"
        log(f"{head}: done in {seconds:.1f} s")
    return statuses
