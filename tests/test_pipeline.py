"""`dreamgym pipeline` end to end on the tiny config: every stage runs and writes its outputs, a
rerun skips finished stages, `--from` reruns later ones, a failing stage keeps earlier outputs."""

from __future__ import annotations

import copy
import json
import re
import shutil

import pytest
import torch

from experiments.cli import main
from experiments.commands.demo import LEAGUE
from experiments.pipeline import StageFailed, fingerprints, read_marker, run_pipeline
from experiments.pipeline_config import (
    AGENT_DEFAULTS,
    AGENT_TYPES,
    DEFAULTS,
    TYPES,
    config_names,
    load_config,
    validate_config,
)
from experiments.pipeline_runs import check_run_folder, prepare
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
    assert "BC on 2 expert episodes" in report  # the bc agent's own demonstrations
    assert (run_dir / "data" / "pipeline" / "tiny-bc-demos-v0").is_dir()
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
    config["dynamics"]["model"]["num_latents"] = 3  # valid alone; not the tokenizer's latents
    (run_dir.parent / "bad.json").write_text(json.dumps(config))
    earlier = {name: read_marker(run_dir, name) for name in ("collect", "tokenizer")}
    with pytest.raises(SystemExit) as exit_info:
        main(["pipeline", str(run_dir.parent / "bad.json"), "--out", str(run_dir)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "stage 'dynamics' failed" in err and "the tokenizer writes" in err
    assert "Traceback" not in err
    assert {name: read_marker(run_dir, name) for name in earlier} == earlier
    assert (run_dir / "tokenizer" / "tokenizer" / "config.json").is_file()
    assert (run_dir / "data" / "pipeline" / "tiny-v0").is_dir()
    failed = read_marker(run_dir, "dynamics")
    assert failed["status"] == "failed" and "the tokenizer writes" in failed["error"]
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
        (
            {"policies": [{"name": "a", "algo": "ppo"}], "score": {"temperature": 0.5}},
            r"score.temperature, for a: an SB3 agent takes temperature 0",
        ),
        (
            {"policies": [{"name": "d", "algo": "dqn"}], "score": {"temperature": 1}},
            "for d: a DQN agent acts greedily",
        ),
        ({"score": {"episodes": "3"}}, "score.episodes must be an integer, got '3'"),
        ({"collect": {"episodes": 2.5}}, "collect.episodes must be an integer, got 2.5"),
        ({"eval_world_model": {"num_steps": 4}}, "num_steps must be a list of integers, got 4"),
        ({"tokenizer": {"train": {"lr": "fast"}}}, "tokenizer.train.lr must be a number"),
        ({"device": 0}, "device must be a string, got 0"),
        ({"experiment": 3}, "experiment must be a string or null, got 3"),
        (
            {"policies": [{"name": "a", "algo": "ppo", "steps": "abc"}]},
            r"policies\[0\]\.steps must be an integer or null, got 'abc'",
        ),
        (
            {"policies": [{"name": "a", "algo": "bc", "train": {"steps": True}}]},
            r"policies\[0\]\.train\.steps must be an integer, got True",
        ),
        ({"policies": [{"name": "a", "algo": "ppo", "demos": {}}]}, "demos are for bc agents"),
        (
            {"policies": [{"name": "a", "algo": "ppo", "settings": {"n_steps": 0}}]},
            r"policies\[0\] \(a\)\.settings: PPO's n_steps must be an integer >= 1",
        ),
        (
            {"policies": [{"name": "a", "algo": "bc", "demos": {"episodes": 0}}]},
            "episodes >= 1",
        ),
        ({"dynamics": {"model": {"num_heads": 0}}}, "dynamics.model: .*num_heads must be"),
        ({"dynamics": {"model": {"dimm": 64}}}, "dynamics.model: unknown setting"),
        ({"tokenizer": {"model": {"latent_dim": "x"}}}, "tokenizer: setting latent_dim must"),
        ({"tokenizer": {"kind": "vae"}}, "tokenizer: unknown tokenizer kind 'vae'"),
    ],
)
def test_config_errors_are_clear(change, message):
    with pytest.raises(ValueError, match=message):
        validate_config({"env": "MiniGridPixels-Empty-8x8-v0", **change})


def test_every_setting_has_a_type():
    assert set(TYPES) == set(DEFAULTS) - {"policies"}
    for section, defaults in DEFAULTS.items():
        if isinstance(defaults, dict):
            assert set(TYPES[section]) == set(defaults), section
    assert set(AGENT_TYPES) == set(AGENT_DEFAULTS)


def test_a_cuda_config_without_cuda_fails_up_front(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    message = re.escape("device 'cuda' but CUDA is not available; use cpu (a -cpu config)")
    with pytest.raises(ValueError, match=message):
        prepare("doorkey-gpu", out=str(tmp_path / "a"))
    with pytest.raises(ValueError, match=message):
        run_pipeline({**load_config("tiny"), "device": "cuda"}, tmp_path / "b", log=quiet)
    assert not (tmp_path / "b").exists()  # nothing ran
    config, _ = prepare("doorkey-gpu", out=str(tmp_path / "a"), device="cpu")
    assert config["device"] == "cpu"
    with pytest.raises(ValueError, match="not a torch device"):
        prepare("tiny", out=str(tmp_path / "a"), device="nodevice")


def test_out_refuses_a_folder_that_holds_no_run(finished, tmp_path, capsys):
    _, run_dir, _ = finished
    victim, bundle_like = tmp_path / "victim", tmp_path / "bundle"
    for folder in (victim, bundle_like):
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "keep.txt").write_text("mine")
    (bundle_like / "config.json").write_text('{"model": {}}')  # a config.json, not a run's
    for option, folder in (("--out", victim), ("--resume-dir", bundle_like)):
        with pytest.raises(SystemExit) as exit_info:
            main(["pipeline", "tiny", option, str(folder)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "no pipeline run" in err
        assert (folder / "data" / "keep.txt").read_text() == "mine"
    with pytest.raises(FileExistsError, match="give a new or empty folder"):
        run_pipeline(load_config("tiny"), victim, log=quiet)
    (tmp_path / "empty").mkdir()
    for fine in (tmp_path / "missing", tmp_path / "empty", run_dir):
        check_run_folder(fine)


@pytest.fixture
def small_league_ppo(monkeypatch):
    """PPO in Dream-League-v0 with one env and 16-step rollouts, so a demo's League run takes
    seconds."""
    import agents.baselines as baselines

    original = baselines.agent_settings

    def settings(env_id, algo, path=baselines.CONFIG_PATH):
        out = original(env_id, algo, path)
        if env_id == "Dream-League-v0":
            small = {"n_steps": 16, "batch_size": 16, "n_epochs": 1}
            out = {**out, "num_envs": 1, "kwargs": {**out["kwargs"], **small}}
        return out

    monkeypatch.setattr(baselines, "agent_settings", settings)


def test_a_demo_rerun_continues_its_run_and_the_league_ppo(
    finished, tmp_path, monkeypatch, capsys, small_league_ppo
):
    _, run_dir, _ = finished
    run = tmp_path / "runs" / "tiny" / "20260101-000000"
    shutil.copytree(run_dir, run)
    monkeypatch.chdir(tmp_path)
    demo = ["demo", "--config", "tiny", "--ppo-steps", "16", "--episodes", "1"]

    def rerun(*extra: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            main([*demo, *extra])
        out, err = capsys.readouterr()
        assert exit_info.value.code == 0, err
        return out

    # the pipeline finished but the League run did not: the demo continues this run
    out = rerun()
    assert "continuing the unfinished run runs/tiny/20260101-000000" in out
    results = run / LEAGUE / "results.json"
    assert results.is_file() and out.count("done, skipped") == len(STAGE_NAMES)
    # killed while scoring: the PPO run resumes from its checkpoint
    results.unlink()
    out = rerun()
    assert "steps in Dream-League-v0 (the shipped world model), resuming" in out
    assert results.is_file()
    # finished: a rerun on its folder skips the League run
    agent = run / LEAGUE / "ppo.zip"
    before = agent.stat().st_mtime_ns
    out = rerun("--out", str(run))
    assert "PPO in Dream-League-v0: done, skipped" in out and "1 episodes of LaneSim-v0" in out
    assert agent.stat().st_mtime_ns == before
    # and a plain rerun starts a new run
    _, fresh = prepare("tiny", root="runs", finished_when=f"{LEAGUE}/results.json")
    assert fresh.resolve() != run and fresh.parent.resolve() == run.parent


def test_settings_added_later_leave_recorded_runs_matching():
    """A run recorded before an agent setting existed must not look changed (and retrain)."""
    config = load_config("tiny")
    before = {**config, "policies": [dict(a) for a in config["policies"]]}
    for agent in before["policies"]:
        if agent["demos"] is None:
            del agent["demos"]
    assert fingerprints(before) == fingerprints(config)
