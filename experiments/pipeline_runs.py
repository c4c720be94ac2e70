"""The run folder of a pipeline: which folders hold a run, which run a rerun continues, and
`prepare`, which picks the config and the folder for `dreamgym pipeline` and `dreamgym demo`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from experiments.arg_types import check_device
from experiments.pipeline_config import config_names, load_config, validate_config
from world_models.checkpoint import read_json

RUN_KEYS = ("experiment", "env", "collect", "policies")  # a pipeline run's config.json has them


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether `path` holds a pipeline run: the `config.json` that `run_pipeline` writes."""
    try:
        config = read_json(Path(path) / "config.json")
    except ValueError:  # missing or corrupt
        return False
    return isinstance(config, dict) and set(RUN_KEYS) <= set(config)


def check_run_folder(path: str | os.PathLike) -> None:
    """Refuse a folder that holds files but no pipeline run: the stages would delete them."""
    path = Path(path)
    if path.is_dir() and any(path.iterdir()) and not is_run_dir(path):
        raise FileExistsError(
            f"{path} holds files but no pipeline run (no run's config.json), and the stages "
            "would delete some of them: give a new or empty folder"
        )


def unfinished_run(
    root: str | os.PathLike, experiment: str, finished_when: str | None = None
) -> Path | None:
    """The newest run folder of `experiment` under `root` unless it finished: its report stage
    is done and the file `finished_when` (relative to the run folder, if given) exists."""
    from experiments.pipeline import read_marker  # it imports this module

    runs = sorted(p for p in Path(root, experiment).glob("*") if is_run_dir(p))
    if not runs:
        return None
    marker = read_marker(runs[-1], "report")
    done = marker and marker.get("status") == "done"
    extra = finished_when is None or (runs[-1] / finished_when).exists()
    return None if done and extra else runs[-1]


def prepare(
    config_arg: str | None,
    out: str | None = None,
    resume_dir: str | None = None,
    device: str | None = None,
    root: str = "runs",
    new: bool = False,
    finished_when: str | None = None,
) -> tuple[dict[str, Any], Path]:
    """(config, run folder): the config from `config_arg` or, when resuming without one, the
    run folder's `config.json`; the folder is `out` (empty, new or a run), `resume_dir` (must
    hold a run), else the newest unfinished run of the experiment under `root` (so rerunning
    after a crash or Ctrl-C continues it; see `unfinished_run` for `finished_when`), else a new
    `root/<experiment>/<time>/`; `new` always starts a new one. `device` overrides the
    config's; this machine must have it."""
    from world_models.runs import new_run_dir

    if out and resume_dir:
        raise ValueError("give --out or --resume-dir, not both")
    if resume_dir and not is_run_dir(resume_dir):
        raise FileNotFoundError(f"--resume-dir {resume_dir} holds no pipeline run (no config.json)")
    folder = out or resume_dir
    if config_arg:
        config = load_config(config_arg)
    elif folder and is_run_dir(folder):
        config = validate_config(read_json(Path(folder) / "config.json"))
    else:
        raise ValueError(f"give a CONFIG (a file or one of {config_names()}), or --resume-dir")
    if device:
        config["device"] = device
    check_device(config["device"])
    if folder:
        check_run_folder(folder)
        return config, Path(folder)
    earlier = None if new else unfinished_run(root, config["experiment"], finished_when)
    if earlier is not None:
        print(f"continuing the unfinished run {earlier} (--new starts a fresh one)", flush=True)
        return config, earlier
    return config, new_run_dir(root, config["experiment"])
