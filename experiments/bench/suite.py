"""Benchmark suite: every speed figure of the README in one run, as a table and as JSON.

- world-model training throughput (frames per second through forward, backward and an AdamW
  step; peak memory) of the shipped Dream-League-v0 tokenizer and dynamics models;
- dream env steps per second, 1 env and 64 batched, beside the real LaneSim-v0 in the same run;
- diffusion-policy actions per second (one observation, and 64 at once) on MiniGrid pixels.

Each on CPU, and on GPU too when CUDA is available. Peak memory is the process's resident set
on CPU (it only grows, so later rows include earlier ones) and `max_memory_allocated` on GPU
(reset after each row).

    python -m experiments.bench.suite [--seconds 3] [--threads 2] [--json bench.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch

from experiments.bench.dream_speed import dream_rate, rate, real_env_rate
from world_models.atomic import atomic_write_text

LEAGUE = Path(__file__).resolve().parents[2] / "envs" / "bundles" / "league"


def peak_memory_mb(device: str) -> float:
    """Peak memory in MiB: on CUDA the GPU allocations since the previous call (so each row
    has its own), on CPU the resident set so far."""
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
        return peak
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def training_rates(device: str, seconds: float, batch: int, seq_len: int) -> list[dict]:
    """Frames per second of one training step of the shipped tokenizer and dynamics."""
    from world_models.bundle import load_bundle
    from world_models.recon_loss import ReconstructionLoss
    from world_models.train_dynamics import DynamicsObjective
    from world_models.train_tokenizer import TokenizerObjective

    models = load_bundle(LEAGUE, device).models
    tokenizer, dynamics = models["tokenizer"], models["dynamics"]
    g = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (batch, seq_len, 64, 64, 3), dtype=torch.uint8, generator=g)
    nvec = torch.tensor([21, 21, 2, 2, 2, 2, 2])
    data = {
        "obs": obs.to(device),
        "action": (torch.rand(batch, seq_len, 7, generator=g) * nvec).long().to(device),
        "labeled": torch.ones(batch, seq_len, dtype=torch.bool, device=device),
        "reward": torch.zeros(batch, seq_len, device=device),
        "is_terminal": torch.zeros(batch, seq_len, dtype=torch.bool, device=device),
    }
    objectives = {  # built in turn: the dynamics objective freezes the tokenizer
        "tokenizer (CNN)": lambda: TokenizerObjective(
            tokenizer.requires_grad_(True), ReconstructionLoss("none")
        ),
        "dynamics": lambda: DynamicsObjective(tokenizer, dynamics.requires_grad_(True)),
    }
    rows = []
    for name, build in objectives.items():
        objective = build().to(device).train()
        params = [p for p in objective.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4)

        def step(objective: torch.nn.Module = objective, opt: Any = opt) -> None:
            with torch.autocast(device, torch.bfloat16, enabled=device == "cuda"):
                loss, _ = objective(data)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device == "cuda":
                torch.cuda.synchronize()

        steps = rate(step, seconds)
        rows.append(
            {
                "what": f"train {name}",
                "device": device,
                "batch": f"{batch}x{seq_len}",
                "value": steps * batch * seq_len,
                "unit": "frames/s",
                "peak_mb": peak_memory_mb(device),
            }
        )
    return rows


def env_rates(device: str, seconds: float, num_envs: list[int]) -> list[dict]:
    """Steps per second of the real LaneSim-v0 and of the shipped Dream-League-v0."""
    rows = []

    def add(what: str, batch: int, steps: float) -> None:
        peak = peak_memory_mb(device)  # read right after the row's run
        rows.append(
            {"what": what, "device": device, "batch": str(batch), "value": steps}
            | {"unit": "steps/s", "peak_mb": peak}
        )

    if device == "cpu":
        add("LaneSim-v0 (real)", 1, real_env_rate("LaneSim-v0", seconds))
    for n in [0, *num_envs]:
        steps = dream_rate(LEAGUE, device, n, "pixels", seconds, 0.5, None)
        add("Dream-League-v0" + (" vector" if n else ""), max(n, 1), steps)
    return rows


def policy_rates(device: str, seconds: float, batches: list[int]) -> list[dict]:
    """Actions per second of a default-size diffusion policy on DoorKey pixels."""
    from agents.diffusion_policy import DiffusionPolicy, DiffusionPolicyConfig

    config = DiffusionPolicyConfig(
        obs_spec={"type": "pixels", "shape": [64, 64, 3]},
        action_spec={"type": "Discrete", "n": 7, "start": 0},
    )
    policy = DiffusionPolicy(config).to(device).eval()
    rows = []
    for b in batches:
        obs = torch.randint(0, 256, (b, 64, 64, 3), dtype=torch.uint8, device=device)

        def act(obs: torch.Tensor = obs) -> None:
            policy.sample(obs)
            if device == "cuda":
                torch.cuda.synchronize()

        # each sample is a chunk of `horizon` actions, of which `execute` are used
        chunks = rate(act, seconds) * b
        rows.append(
            {
                "what": "diffusion policy",
                "device": device,
                "batch": str(b),
                "value": chunks * config.execute,
                "unit": "actions/s",
                "peak_mb": peak_memory_mb(device),
            }
        )
    return rows


HEADER = f"{'what':<28} {'device':<6} {'batch':>6} {'value':>10} {'unit':<9} {'peak MiB':>9}"


def format_row(r: dict) -> str:
    """One result as a line of the table under HEADER."""
    return (
        f"{r['what']:<28} {r['device']:<6} {r['batch']:>6} {r['value']:>10.1f} "
        f"{r['unit']:<9} {r['peak_mb']:>9.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    print(HEADER)
    for device in devices:
        gpu = device == "cuda"
        for measure, extra in (
            (training_rates, (16 if gpu else 4, 8)),
            (env_rates, ([64, 1024] if gpu else [64],)),
            (policy_rates, ([1, 64],)),
        ):
            for row in measure(device, args.seconds, *extra):
                rows.append(row)
                print(format_row(row), flush=True)
    info = {
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "threads": args.threads,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "results": rows,
    }
    text = json.dumps(info, indent=2)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
