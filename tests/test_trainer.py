"""The shared training loop: schedule, checkpoints, exact resume after a kill."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from world_models.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from world_models.runs import apply_overrides, parse_overrides, prepare_run
from world_models.trainer import TrainConfig, Trainer, lr_at, seq_len_at


class Regression(nn.Module):
    """A tiny objective: fit y = x @ w with noise drawn from torch's global RNG."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, batch):
        x = batch["x"] + 0.01 * torch.randn_like(batch["x"])
        loss = ((self.linear(x) - batch["y"]) ** 2).mean()
        return loss, {"mse": loss.item()}


W = np.array([[1.0], [-2.0], [0.5], [3.0]], dtype=np.float32)


def sampler(batch_size: int, seq_len: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    x = rng.standard_normal((batch_size * seq_len, 4)).astype(np.float32)
    return {"x": x, "y": x @ W}


def make_trainer(run_dir, steps: int, sample=sampler, log_every: int = 10) -> Trainer:
    torch.manual_seed(0)
    cfg = TrainConfig(
        steps=steps, batch_size=4, seq_len=2, lr=0.05, warmup=2, ckpt_every=5, log_every=log_every
    )
    return Trainer(Regression(), sample, cfg, run_dir)


def dies_after(calls: int):
    """A sampler that kills the run (as Ctrl-C would) on its `calls + 1`-th batch."""
    count = 0

    def sample(batch_size, seq_len, rng):
        nonlocal count
        count += 1
        if count > calls:
            raise KeyboardInterrupt
        return sampler(batch_size, seq_len, rng)

    return sample


def test_schedule_warms_up_then_decays():
    cfg = TrainConfig(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(55, cfg) < lr_at(20, cfg)
    assert lr_at(100, cfg) == pytest.approx(0.1)


def test_alternating_long_batches():
    cfg = TrainConfig(seq_len=8, long_seq_len=32, long_every=4)
    assert [seq_len_at(s, cfg) for s in range(8)] == [8, 8, 8, 32, 8, 8, 8, 32]
    assert seq_len_at(3, TrainConfig(seq_len=8)) == 8


def test_training_reduces_loss(tmp_path):
    trainer = make_trainer(tmp_path, steps=300)
    first = trainer._train_step(
        {k: torch.from_numpy(v) for k, v in sampler(4, 2, trainer.rng).items()}
    )
    trainer.fit()
    last = trainer._train_step(
        {k: torch.from_numpy(v) for k, v in sampler(4, 2, trainer.rng).items()}
    )
    assert last["mse"] < 0.1 * first["mse"]


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    straight = make_trainer(tmp_path / "straight", steps=20)
    straight.fit()

    with pytest.raises(KeyboardInterrupt):
        make_trainer(tmp_path / "killed", steps=20, sample=dies_after(12)).fit()
    resumed = make_trainer(tmp_path / "killed", steps=20)
    assert resumed.resume() and resumed.step == 10
    resumed.fit()
    for a, b in zip(straight.objective.parameters(), resumed.objective.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_checkpoint_pointer_only_names_complete_folders(tmp_path):
    model = nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path, 1, model, opt, {"note": "a"})
    (tmp_path / "checkpoints" / ".step-00000002.tmp").mkdir()  # a save killed half-way
    folder = latest_checkpoint(tmp_path)
    assert folder.name == "step-00000001"
    assert load_checkpoint(folder, model, opt)["note"] == "a"


def test_a_lost_pointer_resumes_from_the_newest_complete_folder(tmp_path, capsys):
    model = nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    for step in (3, 7):
        save_checkpoint(tmp_path, step, model, opt, {})
    pointer = tmp_path / "checkpoints" / "latest"
    pointer.write_text("step-00000099\n")  # names a folder that is gone
    assert latest_checkpoint(tmp_path).name == "step-00000007"
    pointer.unlink()
    assert latest_checkpoint(tmp_path).name == "step-00000007"
    assert "checkpoints/latest is missing; resuming from step-00000007" in capsys.readouterr().err


def test_resaving_a_step_keeps_the_old_folder_until_the_new_one_is_in_place(tmp_path, monkeypatch):
    model = nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path, 5, model, opt, {"note": "old"})
    real_rename, calls = os.rename, []

    def dies_on_second_rename(src, dst):
        calls.append(src)
        if len(calls) == 2:  # the old folder is aside, the new one not yet in place
            raise KeyboardInterrupt
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", dies_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 5, model, opt, {"note": "new"})
    monkeypatch.setattr(os, "rename", real_rename)
    aside = [p for p in (tmp_path / "checkpoints").iterdir() if ".old-" in p.name]
    assert len(aside) == 1 and (aside[0] / "state.json").is_file()  # nothing is lost
    folder = latest_checkpoint(tmp_path)  # and the resume reads it where it was set aside
    assert folder == aside[0] and load_checkpoint(folder, model, opt)["note"] == "old"
    (folder / "optimizer.safetensors").unlink()  # an aside folder half removed is not used
    assert latest_checkpoint(tmp_path) is None
    save_checkpoint(tmp_path, 6, model, opt, {"note": "next"})  # the next save clears it away
    assert not folder.exists() and latest_checkpoint(tmp_path).name == "step-00000006"


def test_tensorboard_hides_steps_logged_after_the_last_checkpoint(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with pytest.raises(KeyboardInterrupt):  # logs steps 10-12 (every step), saves at 10
        make_trainer(tmp_path, steps=20, sample=dies_after(12), log_every=1).fit()
    resumed = make_trainer(tmp_path, steps=20, log_every=1)
    assert resumed.resume()
    resumed.fit()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == list(range(1, 21))


def test_mismatched_weights_are_named(tmp_path):
    save_checkpoint(
        tmp_path, 1, nn.Linear(2, 3), torch.optim.AdamW(nn.Linear(2, 3).parameters()), {}
    )
    with pytest.raises(CheckpointError, match="shape mismatch.*weight"):
        load_weights(nn.Linear(2, 4), latest_checkpoint(tmp_path) / "model.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_weights(nn.Linear(2, 4), bad)


def test_run_folder_is_not_restarted_by_accident(tmp_path):
    make_trainer(tmp_path, steps=5).fit()
    with pytest.raises(FileExistsError, match="--resume"):
        prepare_run(tmp_path, {"a": 1}, resume=False)
    with pytest.raises(FileNotFoundError, match="run.json"):
        prepare_run(tmp_path / "other", {}, resume=True)
    died = tmp_path / "died"  # killed while writing its first checkpoint: nothing to resume
    (died / "checkpoints" / ".step-00000005.tmp").mkdir(parents=True)
    prepare_run(died, {"a": 1}, resume=False)
    sb3 = tmp_path / "sb3"  # SB3 runs keep checkpoints/latest.zip, not checkpoints/latest
    (sb3 / "checkpoints").mkdir(parents=True)
    (sb3 / "checkpoints" / "latest.zip").write_bytes(b"zip")
    with pytest.raises(FileExistsError, match="--resume"):
        prepare_run(sb3, {"a": 1}, resume=False)


def test_resume_keeps_recorded_settings_and_extends_steps(tmp_path, capsys):
    recorded = {"dataset_id": "d", "train": {"steps": 10, "lr": 0.1}}
    prepare_run(tmp_path, recorded, resume=False)
    now = {"dataset_id": "d", "train": {"steps": 30, "lr": 0.5}}
    settings = prepare_run(tmp_path, now, resume=True, must_match=("dataset_id",))
    assert settings == {"dataset_id": "d", "train": {"steps": 30, "lr": 0.1}}
    assert "train.lr=0.5 (run: 0.1)" in capsys.readouterr().err
    fewer = {"dataset_id": "d", "train": {"steps": 5, "lr": 0.1}}  # a run never shrinks
    assert prepare_run(tmp_path, fewer, resume=True)["train"]["steps"] == 30
    with pytest.raises(ValueError, match="dataset_id='d'"):
        prepare_run(tmp_path, {**now, "dataset_id": "e"}, resume=True, must_match=("dataset_id",))
    top = tmp_path / "top"  # SB3 and imagination record steps at the top level
    prepare_run(top, {"steps": 100}, resume=False)
    assert prepare_run(top, {"steps": 200}, resume=True, steps_key=("steps",))["steps"] == 200


def test_pruning_never_removes_the_checkpoint_just_written(tmp_path):
    model = nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    for step in (4, 6):  # left by an earlier, longer run in the same folder
        save_checkpoint(tmp_path, step, model, opt, {})
    save_checkpoint(tmp_path, 2, model, opt, {})
    assert latest_checkpoint(tmp_path).name == "step-00000002"


def test_overrides_are_checked():
    assert parse_overrides(["depth=4", "name=x", "lr=1e-3"]) == {
        "depth": 4,
        "name": "x",
        "lr": 1e-3,
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["depth"])
    with pytest.raises(ValueError, match="unknown setting"):
        apply_overrides(TrainConfig(), {"nope": 1})
    with pytest.raises(ValueError, match="batch_size must be of type int, got 'abc'"):
        apply_overrides(TrainConfig(), {"batch_size": "abc"})
    with pytest.raises(ValueError, match="seq_len must be of type int, got True"):
        apply_overrides(TrainConfig(), {"seq_len": True})
    assert apply_overrides(TrainConfig(), {"lr": 1}).lr == 1  # an int is a float


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"batch_size": 0}, r"batch_size \(--batch-size\) must be >= 1, got 0"),
        ({"ckpt_every": 0}, "ckpt_every"),
        ({"lr": -1.0}, "lr and weight_decay must be >= 0"),
        ({"min_lr_ratio": 2.0}, "min_lr_ratio"),
    ],
)
def test_bad_training_settings_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)


def _ddp_worker(rank: int, world: int, port: int, run_dir: str, steps: int, resume: bool, out):
    """One process of a 2-process CPU (gloo) run; puts (rank, the x of every batch) on `out`."""
    import os

    import torch.distributed as dist

    os.environ.update(
        WORLD_SIZE=str(world), RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    seen = []

    def sample(batch_size, seq_len, rng):
        batch = sampler(batch_size, seq_len, rng)
        seen.append(batch["x"][0, 0].item())
        return batch

    trainer = make_trainer(run_dir, steps, sample)
    if resume:
        assert trainer.resume()
    trainer.fit()
    out.put((rank, seen))
    dist.barrier()  # neither rank tears gloo down while the other still talks to it
    dist.destroy_process_group()


def _run_ddp(run_dir, steps: int, resume: bool) -> dict[int, list[float]]:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    args = (2, port, str(run_dir), steps, resume, out)
    procs = [ctx.Process(target=_ddp_worker, args=(rank, *args)) for rank in range(2)]
    for p in procs:
        p.start()
    seen = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return seen


def test_multi_process_resume_gives_each_rank_back_its_own_batches(tmp_path):
    whole = _run_ddp(tmp_path / "whole", steps=10, resume=False)
    _run_ddp(tmp_path / "cut", steps=5, resume=False)  # checkpoint at step 5
    resumed = _run_ddp(tmp_path / "cut", steps=10, resume=True)
    assert resumed[0] != resumed[1]  # the ranks still draw different batches
    assert resumed[0] == whole[0][5:] and resumed[1] == whole[1][5:]
