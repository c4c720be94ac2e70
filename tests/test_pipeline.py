"""`dreamgym pipeline` end to end on the tiny config: every stage runs and writes its outputs, a
rerun skips finished stages, `--from` reruns later ones, a failing stage keeps earlier outputs."""

from __future__ import annotations

import copy
import json
import shutil

import pytest

from experiments.cli import main
from experiments.pipeline import StageFailed, read_marker, run_pipeline
from experiments.pipeline_config import config_names, load_config, prepare, validate_config
from experiments.pipeline_stages import STAGE_NAMES


def quiet(line: str) -> None:
    """Pipeline progress lines are not needed in test output."""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One complete run of the tiny pipeline: (config, run folder, stage statuses)."""
    config = load_config("tiny")
    run_dir = tmp_path_factory.mktemp("pipeline") / "run"
    return config, run_dir, run_pipeline(config, run_dir, log=quiet)


@pytest.fixture
def run_copy(finished, tmp_path):
    """Private copies of the finished run and its config, for tests that change them."""
    config, run_dir, _ = finished
    shutil.copytree(run_dir, tmp_path / "run")
    return copy.deepcopy(config), tmp_path / "run"


def finish_times(run_dir) -> dict[str, str]:
    return {name: read_marker(run_dir, name)["finished"] for name in STAGE_NAMES}


def test_every_stage_runs_and_writes_its_outputs(finished):
    config, run_dir, statuses = finished
    assert statuses == dict.fromkeys(STAGE_NAMES, "ran")
    for name in STAGE_NAMES:
        marker = read_marker(run_dir, name)
        assert marker["status"] == "done"
        assert all((run_dir / rel).exists() for rel in marker["outputs"].values())
    assert (run_dir / "dynamics" / "bundle" / "config.json").is_file()
    assert (run_dir / "eval_world_model" / "psnr.png").is_file()
    scores = read_marker(run_dir, "score")["outputs"]
    assert set(scores) == {"expert", "random", "ppo", "ppo-real", "bc", "bc-dream"}
    expert = json.loads((run_dir / scores["expert"]).read_text())
    assert expert["success_rate"] == 1.0 and expert["episodes"] == 2
    report = (run_dir / "report.md").read_text()
    for text in ("## Summary", "PPO in the dream", "| dream K=2 |", "report/scores.png"):
        assert text in report
    for name in ("scores.png", "real_vs_dream.gif", "ppo-best.gif"):
        assert (run_dir / "report" / name).stat().st_size > 0
    assert list((run_dir / "tensorboard").iterdir())
    assert list((run_dir / "agents" / "ppo" / "tensorboard").iterdir())


def test_rerun_skips_finished_stages(run_copy):
    config, run_dir = run_copy
    before = finish_times(run_dir)
    assert run_pipeline(config, run_dir, log=quiet) == dict.fromkeys(STAGE_NAMES, "skipped")
    assert finish_times(run_dir) == before


def test_from_reruns_that_stage_and_later_ones(run_copy):
    config, run_dir = run_copy
    before = finish_times(run_dir)
    statuses = run_pipeline(config, run_dir, start="score", log=quiet)
    assert statuses == {
        **dict.fromkeys(STAGE_NAMES[:5], "skipped"),
        "score": "ran",
        "report": "ran",
    }
    after = finish_times(run_dir)
    assert [after[s] == before[s] for s in STAGE_NAMES] == [True] * 5 + [False] * 2


def test_changed_settings_rerun_only_the_stages_they_touch(run_copy):
    config, run_dir = run_copy
    config["eval_world_model"]["windows"] = 3
    statuses = run_pipeline(config, run_dir, log=quiet)
    ran = [name for name, status in statuses.items() if status == "ran"]
    assert ran == ["eval_world_model", "report"]
    metrics = json.loads((run_dir / "eval_world_model" / "metrics.json").read_text())
    assert metrics["windows"] == 3


def test_missing_output_reruns_its_stage(run_copy):
    config, run_dir = run_copy
    shutil.rmtree(run_dir / "scores" / "random")
    statuses = run_pipeline(config, run_dir, log=quiet)
    assert (statuses["policies"], statuses["score"]) == ("skipped", "ran")
    assert (run_dir / "scores" / "random" / "results.json").is_file()
    results = json.loads((run_dir / "scores" / "random" / "results.json").read_text())
    assert results["temperature"] == 1.0  # tiny.json's score.temperature


def interrupt(run_dir, stage: str) -> None:
    """Make `stage`'s marker say it was still running, as after a kill."""
    marker = read_marker(run_dir, stage)
    marker["status"] = "running"
    (run_dir / "stages" / f"{stage}.json").write_text(json.dumps(marker))


def test_an_interrupted_policies_stage_keeps_the_agents_it_finished(run_copy):
    config, run_dir = run_copy
    interrupt(run_dir, "policies")
    kept = run_dir / "agents" / "ppo" / "ppo.zip"
    before = kept.stat().st_mtime_ns
    shutil.rmtree(run_dir / "agents" / "bc-dream")  # killed as it started
    lines: list[str] = []
    statuses = run_pipeline(config, run_dir, log=lines.append)
    assert statuses["policies"] == "ran"
    assert "[5/7] policies: running (interrupted, resuming)" in lines
    assert "  ppo: trained before the interruption, kept" in lines
    assert kept.stat().st_mtime_ns == before
    assert (run_dir / "agents" / "bc-dream" / "policy" / "config.json").is_file()


def test_an_interrupted_stage_starts_afresh_when_its_input_was_rebuilt(run_copy):
    config, run_dir = run_copy
    interrupt(run_dir, "dynamics")
    shutil.rmtree(run_dir / "tokenizer")  # the tokenizer reruns: a new latent space
    lines: list[str] = []
    run_pipeline(config, run_dir, log=lines.append)
    dynamics = [line for line in lines if line.startswith("[3/7] dynamics: running")]
    assert dynamics == ["[3/7] dynamics: running (input rebuilt (tokenizer))"]


def test_failed_stage_keeps_earlier_outputs_and_is_named(run_copy, capsys):
    config, run_dir = run_copy
    config["dynamics"]["model"]["no_such_setting"] = 1
    (run_dir.parent / "bad.json").write_text(json.dumps(config))
    earlier = {name: read_marker(run_dir, name) for name in ("collect", "tokenizer")}
    with pytest.raises(SystemExit) as exit_info:
        main(["pipeline", str(run_dir.parent / "bad.json"), "--out", str(run_dir)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "stage 'dynamics' failed" in err and "no_such_setting" in err
    assert "Traceback" not in err
    assert {name: read_marker(run_dir, name) for name in earlier} == earlier
    assert (run_dir / "tokenizer" / "tokenizer" / "config.json").is_file()
    assert (run_dir / "data" / "pipeline" / "tiny-v0").is_dir()
    failed = read_marker(run_dir, "dynamics")
    assert failed["status"] == "failed" and "no_such_setting" in failed["error"]
    with pytest.raises(StageFailed) as info:
        run_pipeline(validate_config(config), run_dir, log=quiet)
    assert info.value.stage == "dynamics"
    assert info.value.statuses == {
        "collect": "skipped",
        "tokenizer": "skipped",
        "dynamics": "failed",
    }


def test_cli_resumes_a_run_folder(run_copy, capsys):
    _, run_dir = run_copy
    with pytest.raises(SystemExit) as exit_info:
        main(["pipeline", "--resume-dir", str(run_dir)])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.count("done, skipped") == len(STAGE_NAMES)
    assert "| ppo | PPO in the dream |" in out and "report.md" in out


def test_a_plain_rerun_continues_the_newest_unfinished_run(finished, tmp_path):
    config, run_dir, _ = finished
    root = tmp_path / "runs"
    older, newest = root / "tiny" / "20260101-000000", root / "tiny" / "20260102-000000"
    shutil.copytree(run_dir, older)
    shutil.copytree(run_dir, newest)
    # the newest run finished: a plain rerun starts a new folder
    _, fresh = prepare("tiny", root=str(root))
    assert fresh not in (older, newest) and fresh.parent == root / "tiny"
    fresh.rmdir()
    # the newest run was cut off before its report: a plain rerun continues it
    (newest / "stages" / "report.json").unlink()
    assert prepare("tiny", root=str(root)) == (config, newest)
    _, forced = prepare("tiny", root=str(root), new=True)
    assert forced not in (older, newest)


def test_shipped_configs_are_valid():
    names = config_names()
    for env in ("doorkey", "league", "moving-mnist"):
        assert {f"{env}-cpu", f"{env}-gpu"} <= set(names)
    for name in names:
        config = load_config(name)
        assert config["experiment"] == name


@pytest.mark.parametrize(
    "change, message",
    [
        ({"env": "NoSuchEnv-v0"}, "not a registered id"),
        ({"colect": {}}, "unknown setting"),
        ({"tokenizer": {"train": {"stepz": 3}}}, "unknown setting"),
        ({"policies": [{"name": "a", "algo": "imagination", "init": "b"}]}, "earlier bc"),
        ({"policies": [{"name": "expert", "algo": "ppo"}]}, "already taken"),
        ({"score": {"temperature": -1}}, "temperature must be a number >= 0"),
        ({"score": {"temperature": True}}, "temperature must be a number >= 0"),
    ],
)
def test_config_errors_are_clear(change, message):
    with pytest.raises(ValueError, match=message):
        validate_config({"env": "MiniGridPixels-Empty-8x8-v0", **change})
