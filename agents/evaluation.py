"""Scoring a policy in a real env: success rate or return with 95% confidence intervals,
videos of the best and worst episodes, results as JSON.

Episode i is reset with seed `seed + i`; the default seed is far from the seeds `dreamgym
collect` uses by default, so evaluation episodes are not the training episodes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from data_collection.policies import Policy
from experiments.rollout import Episode, run_episode
from experiments.videos import write_video
from world_models.checkpoint import write_json

EVAL_SEED = 1_000_000
Z95 = 1.959964


def mean_ci(values: np.ndarray | list[float]) -> tuple[float, float, float]:
    """(mean, low, high): Student's t 95% interval mean +- t(n - 1) * sd / sqrt(n) (sd with
    n - 1); a single value gives no interval (NaN bounds)."""
    from scipy.stats import t

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(x.mean())
    if x.size == 1:
        return mean, math.nan, math.nan
    half = float(t.ppf(0.975, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, mean - half, mean + half


def _bounds(low: float, high: float) -> list[float] | None:
    """An interval for JSON: None when there is none (one episode)."""
    return None if math.isnan(low) else [low, high]


def wilson_ci(successes: int, n: int, z: float = Z95) -> tuple[float, float, float]:
    """(rate, low, high): the Wilson score interval of a success rate (sound at 0% and 100%)."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)


def make_eval_env(env_id: str, **kwargs: Any) -> gym.Env:
    """`gym.make` an env id with rgb_array rendering (dreamgym ids register on import)."""
    import envs  # noqa: F401  (registers dreamgym ids)

    return gym.make(env_id, render_mode="rgb_array", **kwargs)


def summarize(
    returns: list[float],
    lengths: list[int],
    successes: list[bool] | None,
    golds: list[float] | None = None,
) -> dict:
    """Results dict: per-episode lists, mean return with its CI, success rate with its CI, and
    mean gold with its CI when the env reports `info["gold"]` (LaneSim)."""
    mean, low, high = mean_ci(returns)
    out: dict[str, Any] = {
        "episodes": len(returns),
        "mean_return": mean,
        "return_ci95": _bounds(low, high),
        "mean_length": float(np.mean(lengths)),
        "returns": [float(r) for r in returns],
        "lengths": [int(n) for n in lengths],
    }
    if successes is not None:
        rate, low, high = wilson_ci(int(sum(successes)), len(successes))
        out.update(
            success_rate=rate, success_ci95=[low, high], successes=list(map(bool, successes))
        )
    if golds is not None:
        mean, low, high = mean_ci(golds)
        out.update(mean_gold=mean, gold_ci95=_bounds(low, high), golds=[float(g) for g in golds])
    return out


def evaluate_policy(
    policy: Policy,
    env_id: str,
    episodes: int = 100,
    seed: int = EVAL_SEED,
    out_dir: str | os.PathLike | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    env: gym.Env | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run `episodes` seeded episodes; success is counted from `info["success"]` on the last
    step when the env reports it. With `out_dir`: `results.json`, `best.mp4`, `worst.mp4`."""
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise FileExistsError(f"{out_dir} is a file; give a folder for the results (--out)")
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    env = env or make_eval_env(env_id)
    returns, lengths, successes, golds = [], [], [], []
    best: tuple[float, Episode] | None = None
    worst: tuple[float, Episode] | None = None
    has_success = has_gold = True
    for i in tqdm(range(episodes), desc=f"evaluate {env_id}", disable=not progress):
        ep = run_episode(env, policy, seed + i, max_steps)
        ret = ep.episode_return
        returns.append(ret)
        lengths.append(len(ep.actions))
        has_success &= "success" in ep.final_info
        successes.append(bool(ep.final_info.get("success", False)))
        has_gold &= "gold" in ep.final_info
        golds.append(float(ep.final_info.get("gold", 0.0)))
        if best is None or ret > best[0]:
            best = (ret, ep)
        if worst is None or ret < worst[0]:
            worst = (ret, ep)
    env.close()
    results = summarize(
        returns, lengths, successes if has_success else None, golds if has_gold else None
    )
    results.update(env_id=env_id, seed=seed, **(metadata or {}))
    if out_dir is not None:
        out = Path(out_dir)
        fps = int(env.metadata.get("render_fps", 10))
        for name, (_, ep) in (("best", best), ("worst", worst)):
            if ep.frames and ep.frames[0] is not None:
                write_video(np.stack(ep.frames), out / f"{name}.mp4", fps=fps)
        write_json(out / "results.json", results)
    return results


def format_results(results: dict[str, Any]) -> str:
    """One human line: success rate (if any) and mean return, each with its 95% CI."""
    parts = [f"{results['episodes']} episodes of {results.get('env_id', '?')}"]
    if "success_rate" in results:
        low, high = results["success_ci95"]
        parts.append(
            f"success {100 * results['success_rate']:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"
        )
    for name, key, digits in (("return", "return", 3), ("gold", "gold", 1)):
        if f"mean_{key}" in results:
            ci = results[f"{key}_ci95"]
            bounds = "" if ci is None else f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
            parts.append(f"{name} {results[f'mean_{key}']:.{digits}f}{bounds}")
    return ", ".join(parts)


def load_agent(
    spec: str,
    env_id: str,
    device: str = "cpu",
    execute: int | None = None,
    temperature: float = 0.0,
) -> Policy:
    """`experiments.policy_loading.load_policy` plus saved diffusion policies as
    `diffusion:FOLDER` (`execute` overrides how many actions run before replanning;
    `temperature` > 0 draws action tokens instead of taking the most likely ones; an SB3 agent
    takes its most likely action at 0 and draws from its distribution at 1, see
    `experiments.policy_loading.sb3_samples`)."""
    kind, sep, path = spec.partition(":")
    if sep and kind.lower() == "diffusion":
        from agents.diffusion_policy import DiffusionAgent, load_diffusion_policy

        policy = load_diffusion_policy(path, device)
        return DiffusionAgent(policy, execute, temperature, device=device)
    from experiments.policy_loading import SB3_ALGOS, load_policy, sb3_samples

    sample = sep != "" and kind.lower() in SB3_ALGOS and sb3_samples(kind, temperature)
    return load_policy(spec, env_id, sample=sample)
