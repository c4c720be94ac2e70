"""The stages of `dreamgym pipeline`: what each one runs and what it writes (see
`experiments/pipeline.py` for how they are sequenced, skipped and resumed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.pipeline_config import SB3
from world_models.trainer import TrainConfig


@dataclass
class Context:
    """What a stage sees: the run folder, the config, earlier stages' markers."""

    run_dir: Path
    config: dict[str, Any]
    markers: dict[str, dict[str, Any]]
    resume: bool = False  # a training stage may continue from its latest checkpoint
    log: Callable[[str], None] = print

    @property
    def env_id(self) -> str:
        return self.config["env"]

    @property
    def device(self) -> str:
        return self.config["device"]

    @property
    def data_dir(self) -> str:
        return str(self.run_dir / "data")

    @property
    def dataset_id(self) -> str:
        return self.config["collect"]["dataset_id"] or f"pipeline/{self.config['experiment']}-v0"

    def output(self, stage: str, key: str) -> Path:
        """An output path recorded by an earlier stage."""
        return self.run_dir / self.markers[stage]["outputs"][key]

    def can_resume(self, run_dir: Path) -> bool:
        """Whether the training run in `run_dir` should continue from its checkpoints."""
        from world_models.runs import has_checkpoints

        return self.resume and has_checkpoints(run_dir)


StageResult = tuple[dict[str, Path], dict[str, Any]]  # (outputs, metrics)


def _collect(ctx: Context) -> StageResult:
    from data_collection.datasets import load_dataset
    from data_collection.recording import collect

    c = ctx.config["collect"]
    path = collect(
        ctx.env_id,
        c["policy"],
        c["episodes"],
        ctx.dataset_id,
        data_dir=ctx.data_dir,
        seed=c["seed"],
        force=True,
        epsilon=c["epsilon"],
    )
    dataset = load_dataset(ctx.dataset_id, ctx.data_dir)
    metrics = {
        "dataset_id": ctx.dataset_id,
        "episodes": dataset.total_episodes,
        "steps": dataset.total_steps,
    }
    ctx.log(f"  {metrics['episodes']} episodes, {metrics['steps']} steps: {path}")
    return {"dataset": path}, metrics


def _tokenizer(ctx: Context) -> StageResult:
    from world_models.train_tokenizer import train_tokenizer

    t = ctx.config["tokenizer"]
    run_dir = ctx.run_dir / "tokenizer"
    metrics = train_tokenizer(
        ctx.dataset_id,
        run_dir,
        kind=t["kind"],
        train=TrainConfig(**t["train"]),
        model_overrides=t["model"],
        perceptual=t["perceptual"],
        perceptual_frames=t["perceptual_frames"],
        data_dir=ctx.data_dir,
        resume=ctx.can_resume(run_dir),
    )
    ctx.log(f"  held-out PSNR {metrics['psnr']:.2f} dB")
    return {"tokenizer": run_dir / "tokenizer"}, metrics


def _dynamics(ctx: Context) -> StageResult:
    from world_models.train_dynamics import train_dynamics

    d = ctx.config["dynamics"]
    run_dir = ctx.run_dir / "dynamics"
    bundle = train_dynamics(
        ctx.dataset_id,
        ctx.output("tokenizer", "tokenizer"),
        run_dir,
        train=TrainConfig(**d["train"]),
        model_overrides=d["model"],
        data_dir=ctx.data_dir,
        context_length=d["context_length"],
        horizon=d["horizon"],
        resume=ctx.can_resume(run_dir),
    )
    ctx.log(f"  bundle: {bundle}")
    return {"dynamics": run_dir / "dynamics", "bundle": bundle}, {}


def _eval_world_model(ctx: Context) -> StageResult:
    from world_models.evaluate import evaluate_world_model, summary_table, write_report

    e = ctx.config["eval_world_model"]
    results = evaluate_world_model(
        ctx.output("dynamics", "bundle"),
        ctx.dataset_id,
        data_dir=ctx.data_dir,
        context=e["context"],
        horizon=e["horizon"],
        windows=e["windows"],
        num_steps=tuple(e["num_steps"]),
        device=ctx.device,
    )
    out = write_report(results, ctx.run_dir / "eval_world_model")
    ctx.log(summary_table(results))
    names = {"metrics": "metrics.json", "plot": "psnr.png", "video": "real_vs_dream.mp4"}
    return {key: out / name for key, name in names.items()}, {}


def _saved_policy(agent: dict[str, Any], ctx: Context) -> Path:
    """Where the trained agent of `policies` lands: `agents/<name>/policy/` or `.../ALGO.zip`."""
    folder = ctx.run_dir / "agents" / agent["name"]
    return folder / (f"{agent['algo']}.zip" if agent["algo"] in SB3 else "policy")


def _train_agent(agent: dict[str, Any], ctx: Context, trained: dict[str, Path]) -> Path:
    """Train one agent of `policies` into `agents/<name>/` (continuing its checkpoint when the
    stage resumes); returns its saved policy."""
    folder = ctx.run_dir / "agents" / agent["name"]
    algo, bundle = agent["algo"], ctx.output("dynamics", "bundle")
    resume = ctx.can_resume(folder)
    evals = {
        "eval_env": ctx.env_id if agent["eval_every"] else None,
        "eval_every": agent["eval_every"],
        "eval_episodes": agent["eval_episodes"],
    }
    if algo == "bc":
        from agents.bc import train_bc

        return train_bc(
            _demos(agent, ctx, resume),
            folder,
            TrainConfig(**agent["train"]),
            ctx.data_dir,
            agent["settings"],
            resume=resume,
        )[1]
    if algo == "imagination":
        from agents.imagination import improve_in_dream

        steps = {"steps": agent["steps"]} if agent["steps"] else {}
        return improve_in_dream(
            trained[agent["init"]],
            "Dream-v0",
            folder,
            bundle=bundle,
            num_envs=agent["num_envs"],
            device=ctx.device,
            overrides=agent["settings"],
            resume=resume,
            **steps,
            **evals,
        )
    from agents.baselines import agent_settings, train_sb3

    defaults = agent_settings(ctx.env_id, algo)  # agents.json's settings for the real env
    dream = agent["train_in"] == "dream"
    return train_sb3(
        algo,
        "Dream-v0" if dream else ctx.env_id,
        folder,
        steps=agent["steps"] or defaults["steps"],
        bundle=bundle if dream else None,
        num_envs=agent["num_envs"] or defaults["num_envs"],
        device=ctx.device,
        overrides={
            **defaults["kwargs"],
            "frame_stack": defaults["frame_stack"],
            **agent["settings"],
        },
        seed=agent["seed"],
        resume=resume,
        **evals,
    )


def _demos(agent: dict[str, Any], ctx: Context, resume: bool) -> str:
    """The dataset a bc agent learns from: the run's, or its own demonstrations, collected
    into the run's data folder (kept when its training resumes)."""
    from data_collection.datasets import dataset_dir
    from data_collection.recording import collect

    demos = agent["demos"]
    if demos is None:
        return ctx.dataset_id
    dataset_id = f"pipeline/{ctx.config['experiment']}-{agent['name']}-demos-v0"
    if not (resume and dataset_dir(dataset_id, ctx.data_dir).exists()):
        ctx.log(f"    {demos['episodes']} {demos['policy']} episodes to learn from")
        collect(
            ctx.env_id,
            demos["policy"],
            demos["episodes"],
            dataset_id,
            data_dir=ctx.data_dir,
            seed=demos["seed"],
            force=True,
            epsilon=demos["epsilon"],
            progress=False,
        )
    return dataset_id


def _policies(ctx: Context) -> StageResult:
    trained: dict[str, Path] = {}
    for agent in ctx.config["policies"]:
        where = agent["train_in"]
        if agent["algo"] == "bc":
            where = "the dataset" if agent["demos"] is None else f"{agent['demos']['policy']} demos"
        saved = _saved_policy(agent, ctx)
        if ctx.resume and saved.exists():
            ctx.log(f"  {agent['name']}: trained before the interruption, kept")
            trained[agent["name"]] = saved
            continue
        ctx.log(f"  {agent['name']}: {agent['algo']} ({where})")
        trained[agent["name"]] = _train_agent(agent, ctx, trained)
    return trained, {}


def policy_names(config: dict[str, Any]) -> list[str]:
    """Names of the scored policies: the baselines, then the agents in config order."""
    return [*config["score"]["baselines"], *(a["name"] for a in config["policies"])]


def _policy_specs(config: dict[str, Any], run_dir: Path, outputs: dict[str, str]) -> dict[str, str]:
    """`--policy` strings of the baselines and trained agents (see `agents.evaluation`)."""
    specs = {name: name for name in config["score"]["baselines"]}
    for agent in config["policies"]:
        kind = agent["algo"] if agent["algo"] in SB3 else "diffusion"
        specs[agent["name"]] = f"{kind}:{run_dir / outputs[agent['name']]}"
    return specs


def _score(ctx: Context) -> StageResult:
    from agents.evaluation import EVAL_SEED, evaluate_policy, format_results, load_agent

    s = ctx.config["score"]
    specs = _policy_specs(ctx.config, ctx.run_dir, ctx.markers["policies"]["outputs"])
    outputs = {}
    for name, spec in specs.items():
        out = ctx.run_dir / "scores" / name
        results = evaluate_policy(
            load_agent(spec, ctx.env_id, ctx.device, temperature=s["temperature"]),
            ctx.env_id,
            s["episodes"],
            EVAL_SEED,
            out,
            s["max_steps"],
            metadata={"policy": name, "temperature": s["temperature"]},
        )
        ctx.log(f"  {name}: {format_results(results)}")
        outputs[name] = out / "results.json"
    return outputs, {}


def _report(ctx: Context) -> StageResult:
    from experiments.pipeline_report import write_pipeline_report

    return {"report": write_pipeline_report(ctx.run_dir, ctx.config, ctx.markers)}, {}


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Context], StageResult]
    needs: tuple[str, ...]  # stages whose outputs it reads
    writes: tuple[str, ...]  # paths under the run folder it owns (removed before a fresh run)
    resumable: bool = False  # a training run that can continue from its checkpoint


STAGES = (
    Stage("collect", _collect, (), ("data",)),
    Stage("tokenizer", _tokenizer, ("collect",), ("tokenizer",), resumable=True),
    Stage("dynamics", _dynamics, ("collect", "tokenizer"), ("dynamics",), resumable=True),
    Stage("eval_world_model", _eval_world_model, ("collect", "dynamics"), ("eval_world_model",)),
    Stage("policies", _policies, ("collect", "dynamics"), ("agents",), resumable=True),
    Stage("score", _score, ("policies",), ("scores",)),
    Stage(
        "report",
        _report,
        ("collect", "tokenizer", "dynamics", "eval_world_model", "policies", "score"),
        ("report.md", "report", "tensorboard"),
    ),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
