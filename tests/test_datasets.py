"""Recording Minari datasets, loading them with clear errors, and the sequence view."""

from __future__ import annotations

import os

import gymnasium as gym
import minari
import numpy as np
import pytest

import envs  # noqa: F401  (registers ids)
from data_collection import recording
from data_collection.datasets import CorruptDatasetError, load_dataset
from data_collection.policies import RandomPolicy
from data_collection.recording import collect
from data_collection.sequence_view import IMAGE, SequenceView, obs_layout, split_episodes
from experiments.cli import main as cli_main

ENV_ID = "MiniGridPixels-Empty-8x8-v0"
SHORT = {"max_steps": 12}  # random episodes truncate after 12 steps


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """One random dataset (truncated episodes) and one expert dataset (terminating episodes)."""
    root = tmp_path_factory.mktemp("datasets")
    collect(ENV_ID, "random", 3, "test/random-v0", root, seed=5, progress=False, env_kwargs=SHORT)
    collect(ENV_ID, "expert", 3, "test/expert-v0", root, seed=0, progress=False)
    return root


def test_round_trip_is_exact(data_dir, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(data_dir))
    dataset = minari.load_dataset("test/random-v0")
    assert dataset.total_episodes == 3
    env = gym.make(ENV_ID, **SHORT)
    for i, ep in enumerate(dataset.iterate_episodes()):
        # replaying the stored actions from seed 5 + i reproduces observations and rewards
        obs, _ = env.reset(seed=5 + i)
        np.testing.assert_array_equal(ep.observations[0], obs)
        for t, action in enumerate(ep.actions):
            obs, reward, term, trunc, _ = env.step(int(action))
            np.testing.assert_array_equal(ep.observations[t + 1], obs)
            assert ep.rewards[t] == reward and ep.terminations[t] == term
        assert trunc and len(ep.actions) == SHORT["max_steps"]
        assert ep.infos["labeled"].tolist() == [False] + [True] * len(ep.actions)


def test_cli_collect_refuses_overwrite_without_force(tmp_path, monkeypatch, capsys):
    def dreamgym_collect(episodes: int, *extra: str) -> int:
        argv = ["collect", "--env", ENV_ID, "--policy", "expert", "--episodes", str(episodes)]
        argv += ["--dataset-id", "cli/expert-v0", "--data-dir", str(tmp_path), *extra]
        with pytest.raises(SystemExit) as exit_:
            cli_main(argv)
        return exit_.value.code

    assert dreamgym_collect(2) == 0
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert minari.load_dataset("cli/expert-v0").total_episodes == 2
    capsys.readouterr()
    assert dreamgym_collect(3) == 2
    assert "already exists" in capsys.readouterr().err
    assert minari.load_dataset("cli/expert-v0").total_episodes == 2
    assert dreamgym_collect(3, "--force") == 0
    assert minari.load_dataset("cli/expert-v0").total_episodes == 3


def test_relative_data_root_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", "data")
    collect(ENV_ID, "expert", 1, "rel/expert-v0", None, seed=0, progress=False)
    assert load_dataset("rel/expert-v0").total_episodes == 1
    assert (tmp_path / "data" / "rel" / "expert-v0" / "data" / "main_data.hdf5").is_file()


class _Crash(Exception):
    pass


@pytest.mark.parametrize("error", [_Crash, KeyboardInterrupt])
def test_crash_mid_collection_leaves_nothing(tmp_path, monkeypatch, error):
    class CrashingPolicy(RandomPolicy):
        calls = 0

        def act(self, obs):
            CrashingPolicy.calls += 1
            if CrashingPolicy.calls == 30:  # in the third episode of 12 steps
                raise error("policy crashed")
            return super().act(obs)

    monkeypatch.setattr(recording, "make_policy", lambda *a, **k: CrashingPolicy())
    with pytest.raises(error):
        collect(ENV_ID, "random", 4, "crash/random-v0", tmp_path, progress=False, env_kwargs=SHORT)
    assert not (tmp_path / "crash" / "random-v0").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_a_write_killed_outright_leaves_a_folder_the_next_write_removes(tmp_path):
    """SIGKILL skips every `finally`: the next write removes temporary folders of this host
    whose process is gone, and keeps those of live processes."""
    import socket
    import subprocess

    from data_collection.datasets import TMP_PREFIX

    host = socket.gethostname()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that no longer runs
    dead = tmp_path / f"{TMP_PREFIX}{host}-{gone.pid}-abc"
    live = tmp_path / f"{TMP_PREFIX}{host}-{os.getpid()}-def"
    for folder in (dead, live):
        (folder / "data").mkdir(parents=True)
    collect(ENV_ID, "random", 1, "tmp/random-v0", tmp_path, progress=False, env_kwargs=SHORT)
    assert not dead.exists() and live.exists()


def test_crash_during_forced_replace_keeps_old_dataset(tmp_path, monkeypatch):
    collect(ENV_ID, "expert", 2, "keep/expert-v0", tmp_path, progress=False)

    def crash(*args, **kwargs):
        raise _Crash

    monkeypatch.setattr(recording, "record_episode", crash)
    with pytest.raises(_Crash):
        collect(ENV_ID, "expert", 5, "keep/expert-v0", tmp_path, force=True, progress=False)
    assert load_dataset("keep/expert-v0", tmp_path).total_episodes == 2


def test_view_alignment_matches_minari(data_dir):
    dataset = load_dataset("test/expert-v0", data_dir)
    view = SequenceView("test/expert-v0", data_dir)
    assert view.num_episodes == 3 and view.env_id == ENV_ID
    assert view.num_steps == dataset.total_steps + 3
    for i, ep in enumerate(dataset.iterate_episodes()):
        got = view.episode(i)
        n = len(ep.actions)
        np.testing.assert_array_equal(got["obs"], ep.observations)
        assert got["action"].dtype == np.int64 and got["action"].tolist() == [0, *ep.actions]
        assert got["reward"].dtype == np.float32
        np.testing.assert_array_equal(got["reward"], np.r_[0, ep.rewards].astype(np.float32))
        assert got["is_first"].tolist() == [True] + [False] * n
        assert got["is_terminal"].tolist() == [False, *ep.terminations.tolist()]
        assert got["is_terminal"][-1]  # the expert reaches the goal
        assert got["labeled"].tolist() == [False] + [True] * n


def test_windows_never_straddle_episodes(data_dir):
    view = SequenceView("test/random-v0", data_dir)
    episodes = [view.episode(i) for i in range(view.num_episodes)]
    seq_len = 8
    batch = view.sample(64, seq_len, np.random.default_rng(0))
    assert batch["obs"].shape == (64, seq_len, 64, 64, 3) and batch["obs"].dtype == np.uint8
    assert batch["action"].shape == (64, seq_len) and batch["labeled"].dtype == bool
    assert not batch["is_first"][:, 1:].any()
    for b in range(64):
        window = {k: v[b] for k, v in batch.items()}
        matches = [
            (e, k)
            for e, ep in enumerate(episodes)
            for k in range(len(ep["obs"]) - seq_len + 1)
            if all(np.array_equal(ep[key][k : k + seq_len], window[key]) for key in window)
        ]
        assert matches, f"window {b} is not a slice of any single episode"


def test_short_episodes_are_skipped_and_subsets(data_dir):
    view = SequenceView("test/random-v0", data_dir, episodes=[2])
    assert view.num_episodes == 1 and view.num_steps == 13
    batch = view.sample(16, 13, np.random.default_rng(1))  # only the whole episode fits
    np.testing.assert_array_equal(
        batch["obs"][3], SequenceView("test/random-v0", data_dir).episode(2)["obs"]
    )
    with pytest.raises(ValueError, match="ask for shorter windows"):
        view.sample(4, 14, np.random.default_rng(0))
    with pytest.raises(ValueError, match="episodes must be indices"):
        SequenceView("test/random-v0", data_dir, episodes=[3])


def test_split_episodes():
    train, test = split_episodes(10, 0.2, seed=3)
    assert len(test) == 2 and sorted(train + test) == list(range(10))
    assert split_episodes(10, 0.2, seed=3) == (train, test)
    assert split_episodes(5, 0.0) == ([0, 1, 2, 3, 4], [])
    with pytest.raises(ValueError):
        split_episodes(1, 0.5)


def test_cache_is_rebuilt_when_dataset_changes(tmp_path):
    collect(
        ENV_ID, "random", 2, "cache/random-v0", tmp_path, seed=0, progress=False, env_kwargs=SHORT
    )
    before = SequenceView("cache/random-v0", tmp_path).episode(0)["obs"]
    collect(
        ENV_ID,
        "random",
        2,
        "cache/random-v0",
        tmp_path,
        seed=50,
        force=True,
        progress=False,
        env_kwargs=SHORT,
    )
    after = SequenceView("cache/random-v0", tmp_path).episode(0)["obs"]
    np.testing.assert_array_equal(
        after, minari.MinariDataset(tmp_path / "cache/random-v0/data")[0].observations
    )
    assert not np.array_equal(before, after)


def test_missing_dataset_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="dreamgym collect") as err:
        load_dataset("nowhere/missing-v0", tmp_path)
    assert str(tmp_path / "nowhere" / "missing-v0") in str(err.value)
    with pytest.raises(FileNotFoundError):
        SequenceView("nowhere/missing-v0", tmp_path)
    with pytest.raises(ValueError, match="malformed dataset id"):
        load_dataset("no version", tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "no_metadata", "bad_metadata"])
def test_corrupt_dataset_error(tmp_path, damage):
    collect(ENV_ID, "expert", 2, "bad/expert-v0", tmp_path, progress=False)
    data = tmp_path / "bad" / "expert-v0" / "data"
    hdf5 = data / "main_data.hdf5"
    if damage == "truncate":
        hdf5.write_bytes(hdf5.read_bytes()[: hdf5.stat().st_size // 2])
    elif damage == "garbage":
        hdf5.write_bytes(b"not an hdf5 file" * 100)
    elif damage == "no_metadata":
        (data / "metadata.json").unlink()
    else:
        (data / "metadata.json").write_text("{truncated")
    with pytest.raises(CorruptDatasetError, match="re-create"):
        load_dataset("bad/expert-v0", tmp_path)
    with pytest.raises(CorruptDatasetError):
        SequenceView("bad/expert-v0", tmp_path)


def test_obs_layout_of_images_dicts_and_unsupported_spaces() -> None:
    box = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    assert obs_layout(box) == {IMAGE: ((8, 8, 3), np.uint8)}
    grid = gym.spaces.Dict(grid=box, direction=gym.spaces.Discrete(4))
    assert obs_layout(grid) == {"grid": ((8, 8, 3), np.uint8), "direction": ((), np.int64)}
    with pytest.raises(ValueError, match=r"keys must be identifiers, got \[.a/b.\]"):
        obs_layout(gym.spaces.Dict({"a/b": box}))
    for bad in (
        gym.spaces.Box(0.0, 1.0, (4,), np.float32),
        gym.spaces.Dict(grid=box, speed=gym.spaces.Box(-1.0, 1.0, (2,), np.float32)),
    ):
        with pytest.raises(ValueError, match="uint8 Box observations .* or a Dict"):
            obs_layout(bad)


@pytest.mark.parametrize("damage", ["truncated obs", "offsets", "short reward"])
def test_a_damaged_cache_is_rebuilt(data_dir, damage):
    view = SequenceView("test/random-v0", data_dir)
    before = view.episode(1)["obs"].copy()
    cache = data_dir / "test" / "random-v0" / "dreamgym_cache"
    if damage == "truncated obs":
        obs = next(cache.glob("obs*.npy"))
        with obs.open("r+b") as f:  # as after a full disk or a copy cut short
            f.truncate(obs.stat().st_size // 2)
    elif damage == "offsets":  # episode bounds that no longer match the arrays
        offsets = np.load(cache / "offsets.npy")
        np.save(cache / "offsets.npy", offsets[::-1].copy())
    else:
        np.save(cache / "reward.npy", np.load(cache / "reward.npy")[:-3])
    np.testing.assert_array_equal(
        SequenceView("test/random-v0", data_dir).episode(1)["obs"], before
    )


@pytest.mark.parametrize("kind", ["random", "noisy"])
def test_policies_draw_from_streams_of_their_own_not_the_envs(kind):
    """Gymnasium's np_random(seed) is default_rng(seed): a policy seeded with the episode's
    seed itself would repeat the env's own draws (e.g. random actions = spawn jitter)."""
    from data_collection.policies import make_policy

    env = gym.make("MovingMNIST-v0")
    policy = make_policy(kind, "MovingMNIST-v0", epsilon=0.5)
    for seed in (0, 7):
        env.reset(seed=seed)
        policy.reset(env, seed)
        env_draws = np.random.default_rng(seed).random(4)
        assert not np.allclose(policy.rng.random(4), env_draws)
        assert not np.allclose(env.action_space.np_random.random(4), env_draws)
        if kind == "noisy":
            assert not np.allclose(policy.expert.rng.random(4), policy.rng.random(4))
