"""Pipeline configs (`experiments/configs/pipelines/*.json`): sections, defaults and
validation. The run folder a pipeline writes into is `experiments/pipeline_runs.py`; the
stages are in `experiments/pipeline.py`."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.policy_loading import SB3_ALGOS, sb3_samples
from world_models.trainer import TrainConfig

CONFIG_DIR = Path(__file__).resolve().parent / "configs" / "pipelines"
SB3 = SB3_ALGOS
ALGOS = (*SB3, "bc", "imagination")
BASELINES = ("expert", "random", "noisy")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")

# Settings of each section and their defaults; None where a stage decides (or none is needed).
DEFAULTS: dict[str, Any] = {
    "experiment": None,  # default: the config file's name
    "env": None,  # real env id (required)
    "device": "cpu",  # torch device of evaluation, dream envs and SB3 (trainers pick their own)
    "collect": {"policy": "noisy", "episodes": 100, "epsilon": 0.2, "seed": 0, "dataset_id": None},
    "tokenizer": {
        "kind": "cnn",
        "perceptual": "none",
        "perceptual_frames": None,
        "model": {},
        "train": {},
    },
    "dynamics": {"model": {}, "train": {}, "context_length": 1, "horizon": 200},
    "eval_world_model": {"context": 4, "horizon": 16, "windows": 64, "num_steps": [4]},
    "policies": [],
    # temperature: diffusion policies draw action tokens (> 0) or take the most likely (0),
    # SB3 agents draw actions (1) or take the most likely (0); the DoorKey configs use 1,
    # since argmax policies can loop in place forever
    "score": {
        "episodes": 20,
        "max_steps": None,
        "baselines": ["expert", "random"],
        "temperature": 0.0,
    },
}
AGENT_DEFAULTS: dict[str, Any] = {
    "name": None,
    "algo": None,  # ppo | a2c | dqn | bc | imagination
    "train_in": "dream",  # SB3 only: "dream" (the run's bundle) or "real"
    "steps": None,  # SB3: env steps; imagination: iterations (bc: train.steps)
    "num_envs": None,
    "settings": {},  # SB3 arguments / ImaginationConfig / DiffusionPolicyConfig (bc) fields
    "train": {},  # bc: TrainConfig fields
    "init": None,  # imagination: name of the bc (or imagination) agent to improve
    "seed": 0,
    "eval_every": 0,  # > 0: score in the real env during training (TensorBoard "return")
    "eval_episodes": 10,
    # bc only: {"policy": "expert", "episodes": N, "seed": S, "epsilon": e} collects the
    # demonstrations BC learns from; null: the run's dataset (what the world model learns from)
    "demos": None,
}
DEMOS_TYPES: dict[str, str] = {
    "policy": "a string",
    "episodes": "an integer",
    "seed": "an integer",
    "epsilon": "a number",
}

# The kind of value each setting takes (see KINDS; "... or null" also allows null), by section.
TYPES: dict[str, Any] = {
    "experiment": "a string or null",
    "env": "a string",
    "device": "a string",
    "collect": {
        "policy": "a string",
        "episodes": "an integer",
        "epsilon": "a number",
        "seed": "an integer",
        "dataset_id": "a string or null",
    },
    "tokenizer": {
        "kind": "a string",
        "perceptual": "a string",
        "perceptual_frames": "an integer or null",
        "model": "a JSON object",
        "train": "a JSON object",
    },
    "dynamics": {
        "model": "a JSON object",
        "train": "a JSON object",
        "context_length": "an integer",
        "horizon": "an integer",
    },
    "eval_world_model": {
        "context": "an integer",
        "horizon": "an integer",
        "windows": "an integer",
        "num_steps": "a list of integers",
    },
    "score": {
        "episodes": "an integer",
        "max_steps": "an integer or null",
        "baselines": "a list of strings",
        "temperature": "a number >= 0",
    },
}
AGENT_TYPES: dict[str, str] = {
    "name": "a string",
    "algo": "a string",
    "train_in": "a string",
    "steps": "an integer or null",
    "num_envs": "an integer or null",
    "settings": "a JSON object",
    "train": "a JSON object",
    "init": "a string or null",
    "seed": "an integer",
    "eval_every": "an integer",
    "eval_episodes": "an integer",
    "demos": "a JSON object or null",
}
TRAIN_TYPES: dict[str, str] = {
    f.name: "an integer" if type(f.default) is int else "a number"
    for f in dataclasses.fields(TrainConfig)
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


KINDS: dict[str, Callable[[Any], bool]] = {
    "an integer": _is_int,
    "a number": _is_number,
    "a number >= 0": lambda v: _is_number(v) and 0 <= v < math.inf,
    "a string": lambda v: isinstance(v, str),
    "a JSON object": lambda v: isinstance(v, dict),
    "a list of integers": lambda v: isinstance(v, list) and all(map(_is_int, v)),
    "a list of strings": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
}


def config_names() -> list[str]:
    """Names of the shipped configs (`experiments/configs/pipelines/<name>.json`)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def find_config(name_or_path: str) -> Path:
    """A config file from a path, or from a shipped config's name such as `doorkey-cpu`."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    named = CONFIG_DIR / f"{name_or_path}.json"
    if named.is_file():
        return named
    raise FileNotFoundError(
        f"no pipeline config {name_or_path!r}: give a JSON file or one of {config_names()}"
    )


def load_config(name_or_path: str) -> dict[str, Any]:
    """Read and validate a config (defaults filled in)."""
    path = find_config(name_or_path)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    return validate_config(raw, default_experiment=path.stem)


def _merge(raw: Any, defaults: dict[str, Any], where: str) -> dict[str, Any]:
    """`defaults` updated with `raw` (a dict; keys starting with "_" are comments)."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a JSON object, got {raw!r}")
    raw = {k: v for k, v in raw.items() if not k.startswith("_")}
    unknown = sorted(set(raw) - set(defaults))
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} in {where}; known: {sorted(defaults)}")
    return {**defaults, **raw}


def _check_types(values: dict[str, Any], types: dict[str, Any], where: str) -> None:
    """Each setting in `values` has the kind `types` gives it (sections are checked apart)."""
    for key, kind in types.items():
        if not isinstance(kind, str) or key not in values:
            continue
        value = values[key]
        if value is None and kind.endswith(" or null"):
            continue
        if not KINDS[kind.removesuffix(" or null")](value):
            raise ValueError(f"{where}{key} must be {kind}, got {value!r}")


def _check_train(train: Any, where: str) -> None:
    """`train` must be a dict of TrainConfig fields of the right kinds."""
    _merge(train, dict.fromkeys(TRAIN_TYPES), where)
    _check_types(train, TRAIN_TYPES, f"{where}.")


def _check_agents(agents: Any, baselines: list[str]) -> list[dict[str, Any]]:
    if not isinstance(agents, list):
        raise ValueError(f"policies must be a list of agents, got {agents!r}")
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(agents):
        agent = _merge(raw, AGENT_DEFAULTS, f"policies[{i}]")
        name, algo = agent["name"], agent["algo"]
        where = f"policies[{i}] ({name})"
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise ValueError(f"policies[{i}] needs a name of letters, digits, '-' and '_'")
        if name in baselines or name in (a["name"] for a in out):
            raise ValueError(f"{where}: the name is already taken by another policy")
        if algo not in ALGOS:
            raise ValueError(f"{where}: algo must be one of {ALGOS}, got {algo!r}")
        _check_types(agent, AGENT_TYPES, f"policies[{i}].")
        for key in ("steps", "num_envs"):
            if agent[key] is not None and agent[key] < 1:
                raise ValueError(f"{where}: {key} must be >= 1 (or null: the default)")
        if agent["train_in"] not in ("dream", "real") or (
            agent["train_in"] == "real" and algo not in SB3
        ):
            raise ValueError(f"{where}: train_in is 'dream', or 'real' for {SB3}")
        if algo == "imagination":
            earlier = {a["name"]: a["algo"] for a in out}
            if earlier.get(agent["init"]) not in ("bc", "imagination"):
                raise ValueError(
                    f"{where}: init must name an earlier bc or imagination agent, "
                    f"got {agent['init']!r}"
                )
        _check_train(agent["train"], f"policies[{i}].train")
        if algo in SB3:
            _check_sb3_settings(algo, agent["settings"], where)
        if agent["demos"] is not None:
            agent["demos"] = _check_demos(agent, where)
        out.append(agent)
    return out


def _check_sb3_settings(algo: str, settings: dict[str, Any], where: str) -> None:
    """An SB3 agent's settings (algorithm arguments and frame_stack), checked before the
    stages before it spend their time."""
    from agents.baselines import check_algo_kwargs

    try:
        check_algo_kwargs(algo, settings)
    except ValueError as err:
        raise ValueError(f"{where}.settings: {err}") from err


def _check_model_settings(config: dict[str, Any]) -> None:
    """Build the tokenizer's and the dynamics' configs from the settings (the dynamics with
    placeholder latents and actions), so a bad setting fails before any stage runs."""
    import gymnasium as gym

    from world_models.dynamics import DynamicsConfig
    from world_models.runs import apply_overrides
    from world_models.train_tokenizer import default_model_spec
    from world_models.trainer import TrainConfig

    env = gym.make(config["env"])
    space = env.observation_space
    env.close()
    if not isinstance(space, gym.spaces.Box):
        pixels = config["env"].replace("MiniGridSymbolic-", "MiniGridPixels-")
        hint = f" ({pixels})" if pixels != config["env"] else ""
        raise ValueError(
            f"env {config['env']} observes {space}; the pipeline learns a world model of image "
            f"observations: use a pixel env{hint}"
        )
    tokenizer = config["tokenizer"]
    try:
        train = TrainConfig(**tokenizer["train"])
        default_model_spec(tokenizer["kind"], space, tokenizer["model"], train)
    except (TypeError, ValueError) as err:
        raise ValueError(f"tokenizer: {err}") from err
    placeholder = DynamicsConfig(action_spec={"type": "Discrete", "n": 2, "start": 0})
    try:
        apply_overrides(placeholder, config["dynamics"]["model"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"dynamics.model: {err}") from err


def _check_demos(agent: dict[str, Any], where: str) -> dict[str, Any]:
    """A bc agent's demonstrations: policy, episodes (>= 1), seed, epsilon (noisy)."""
    from data_collection.policies import POLICY_KINDS

    if agent["algo"] != "bc":
        raise ValueError(f"{where}: demos are for bc agents")
    demos = _merge(
        agent["demos"],
        {"policy": "expert", "episodes": None, "seed": 0, "epsilon": 0.2},
        f"{where}.demos",
    )
    _check_types(demos, DEMOS_TYPES, f"{where}.demos.")
    if demos["policy"] not in POLICY_KINDS or demos["episodes"] < 1:
        raise ValueError(f"{where}.demos: policy one of {POLICY_KINDS}, episodes >= 1")
    if not 0 <= demos["epsilon"] <= 1:
        raise ValueError(f"{where}.demos.epsilon must be in [0, 1], got {demos['epsilon']}")
    return demos


def validate_config(raw: Any, default_experiment: str = "pipeline") -> dict[str, Any]:
    """The config with defaults filled in; a clear `ValueError` for what cannot work.

    The tokenizer's and the dynamics' `model` settings are checked here too; agents'
    `settings` beyond SB3's are checked by the stage that uses them.
    """
    import gymnasium as gym

    import envs  # noqa: F401  (registers dreamgym ids)
    from data_collection.policies import POLICY_KINDS

    config = _merge(raw, DEFAULTS, "the config")
    if not isinstance(config["env"], str):
        raise ValueError("the config needs `env`: the id of the real env, e.g. LaneSim-v0")
    _check_types(config, TYPES, "")
    config["experiment"] = config["experiment"] or default_experiment
    if not NAME_RE.fullmatch(config["experiment"]):
        raise ValueError(f"experiment {config['experiment']!r}: use letters, digits, '-', '_'")
    try:
        gym.spec(config["env"])
    except gym.error.Error as err:
        raise ValueError(f"env {config['env']!r} is not a registered id: {err}") from err
    if config["env"].startswith("Dream"):
        raise ValueError(f"env must be a real env (the pipeline learns its dream): {config['env']}")
    for section in ("collect", "tokenizer", "dynamics", "eval_world_model", "score"):
        config[section] = _merge(config[section], DEFAULTS[section], section)
        _check_types(config[section], TYPES[section], f"{section}.")
    if config["collect"]["policy"] not in POLICY_KINDS:
        raise ValueError(f"collect.policy must be one of {POLICY_KINDS}")
    for section in ("tokenizer", "dynamics"):
        _check_train(config[section]["train"], f"{section}.train")
    _check_model_settings(config)
    baselines = config["score"]["baselines"]
    if not set(baselines) <= set(BASELINES):
        raise ValueError(f"score.baselines must be a list drawn from {BASELINES}")
    config["policies"] = _check_agents(config["policies"], baselines)
    for agent in config["policies"]:
        if agent["algo"] in SB3:
            try:
                sb3_samples(agent["algo"], config["score"]["temperature"])
            except ValueError as err:
                raise ValueError(f"score.temperature, for {agent['name']}: {err}") from err
    return config
