"""The `dreamgym` command: `--help` works at the top and on every subcommand."""

from __future__ import annotations

import pytest

from experiments.cli import build_parser, main

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def test_every_expected_subcommand_is_there():
    expected = {"collect", "ingest-video", "train-tokenizer", "train-dynamics", "export-bundle"}
    expected |= {"eval-world-model", "eval-video-prediction", "play", "compare", "pipeline"}
    expected |= {"train-policy", "evaluate", "demo", "train-decoder"}
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
        (["play", "NoSuchEnv-v0", "--steps", "1"], "`import envs` registers dreamgym's ids"),
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
        (["train-policy", "--algo", "ppo", "--env", "LaneSim-v0", "--num-envs", "-2"], "-2"),
        (["train-policy", "--algo", "ppo", "--env", "LaneSim-v0", "--steps", "0"], ">= 1 for SB3"),
        (
            ["train-policy", "--algo", "ppo", "--env", "LaneSim-v0", "--dataset", "x/y-v0"],
            "--dataset: not used by SB3",
        ),
        (
            [
                "train-policy",
                "--algo",
                "diffusion",
                "--env",
                "LaneSim-v0",
                "--dataset",
                "x/y-v0",
                "--bundle",
                "b",
                "--eval-every",
                "5",
            ],
            "--bundle, --eval-every: not used by behaviour cloning",
        ),
        (["train-tokenizer", "--dataset", "x/y-v0", "--threads", "-1"], "--threads"),
        (["train-dynamics", "--dataset", "x/y-v0", "--horizon", "0"], "--horizon"),
        (["play", "LaneSim-v0", "--steps", "1", "--env-kwarg", "bogus=1"], "--env-kwarg"),
        (["play", "LaneSim-v0", "--steps", "1", "--env-kwarg", "bogus"], "--env-kwarg expects"),
        (
            ["train-policy", "--algo", "ppo", "--env", "LaneSim-v0", "--set", "n_steps=-4"],
            "PPO's n_steps must be an integer >= 1, got -4",
        ),
        (
            ["train-policy", "--algo", "ppo", "--env", "LaneSim-v0", "--set", "policy_kwargs=5"],
            "PPO's policy_kwargs must be a dict, got 5",
        ),
        (
            ["train-policy", "--algo", "ppo", "--env", "LaneSim-v0", "--num-envs", "1"]
            + ["--set", "n_steps=1", "--steps", "64"],
            "PPO refuses these settings",
        ),
        (
            ["train-policy", "--algo", "ppo", "--env", "LaneSim-v0", "--steps", "64"]
            + ["--num-envs", "1", "--eval-env", "MiniGridPixels-DoorKey-8x8-v0"]
            + ["--eval-every", "1000"],
            "but MiniGridPixels-DoorKey-8x8-v0 acts in Discrete",
        ),
        (
            ["evaluate", "--policy", "random", "--env", "LaneSim-v0", "--device", "gpu0"],
            "torch device",
        ),
        (["compare", "LaneSim-v0", "LaneSim-v0", "--steps", "1"], "is not a dream env"),
        (
            ["evaluate", "--policy", "random", "--env", "LaneSim-v0", "--out", "/etc/passwd"],
            "/etc/passwd is a file; give a folder",
        ),
        (["play", "LaneSim-v0", "--steps", "1", "--out", "/proc/no/x.mp4"], "error:"),
    ],
)
def test_bad_input_is_one_clear_error_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err


def test_the_registration_hint_is_only_for_unknown_ids(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["play", "MiniGridPixels-DoorKey-8x8-v0", "--steps", "1", "--seed", "-1"])
    err = capsys.readouterr().err
    assert "Seed must be greater or equal to zero" in err and "registers" not in err


def test_play_and_compare_write_videos_and_per_step_psnr(tmp_path, capsys):
    import imageio.v3 as iio

    play = tmp_path / "play.mp4"
    with pytest.raises(SystemExit) as exit_:
        main(["play", "LaneSim-v0", "--policy", "random", "--steps", "5", "--out", str(play)])
    assert exit_.value.code == 0 and iio.imread(play).shape[0] == 6  # the start frame + 5
    printed = capsys.readouterr()
    assert "5 steps" in printed.out and "LaneSim-v0: 100%" in printed.err and "5/5" in printed.err
    out = tmp_path / "compare.mp4"
    argv = ["compare", "LaneSim-v0", "Dream-League-v0", "--steps", "3", "--out", str(out)]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    printed = capsys.readouterr()
    assert exit_.value.code == 0 and "compared steps: 100%" in printed.err
    assert [line.split()[0] for line in printed.out.splitlines()[1:4]] == ["1", "2", "3"]
    video = iio.imread(out)
    assert video.shape[0] == 4 and video.shape[2] == 2 * video.shape[1]  # real | dream
