"""The `dreamgym` command: `--help` works at the top and on every subcommand."""

from __future__ import annotations

import pytest

from experiments.cli import build_parser, main

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def test_every_expected_subcommand_is_there():
    expected = {"collect", "ingest-video", "train-tokenizer", "train-dynamics", "export-bundle"}
    expected |= {"eval-world-model", "eval-video-prediction", "play", "compare", "pipeline"}
    expected |= {"train-policy", "evaluate", "demo"}
    assert expected <= set(SUBCOMMANDS)


def test_top_level_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"dreamgym {command}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["play", "NoSuchEnv-v0", "--steps", "1"], "NoSuchEnv"),
        (
            ["train-policy", "--algo", "ppo", "--env", "LaneSim-v0", "--lr", "1e-3"],
            "--lr: behaviour-cloning options",
        ),
        (["train-tokenizer", "--dataset", "xy/z-v0", "--batch-size", "0"], "--batch-size"),
        (
            ["train-policy", "--algo", "ppo", "--env", "LaneSim-v0", "--set", "nope=1"],
            "PPO takes no argument(s) ['nope']",
        ),
        (
            ["train-policy", "--algo", "a2c", "--env", "LaneSim-v0", "--set", "gamma=high"],
            "A2C's gamma must be a number, got 'high'",
        ),
    ],
)
def test_bad_input_is_one_clear_error_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err
