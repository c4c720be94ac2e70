"""Stable-Baselines3 baselines (PPO, A2C, DQN) in dream envs and in real envs.

Dream ids (`Dream-...`) are stepped as one batched `DreamSB3VecEnv` (no subprocesses); real ids
as a `DummyVecEnv` of monitored envs. Settings per env id come from
`experiments/configs/agents.json`. With `eval_env`, the agent is scored in that real env every
`eval_every` steps, and the training return and the real return go on one TensorBoard chart
("return"), so the gap between imagined and real return is a curve. `frame_stack` (a setting per
env id, or `--set frame_stack=N`) stacks each image with the N - 1 before it on the channel
axis, SB3's `VecFrameStack`: Moving MNIST's two digits look alike, so which one the agent
steers shows only in motion. A checkpoint
(`checkpoints/latest.zip`, written atomically at the end of a rollout every `ckpt_every` steps)
lets `resume` continue a killed run of the same algorithm and env; DQN resumes with an empty
replay buffer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from world_models.atomic import publish

CONFIG_PATH = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "agents.json"
ALGOS = ("ppo", "a2c", "dqn")


def is_dream(env_id: str) -> bool:
    return env_id.split(":")[-1].startswith("Dream")


def agent_settings(env_id: str, algo: str, path: str | os.PathLike = CONFIG_PATH) -> dict:
    """{"steps", "num_envs", "frame_stack", "kwargs"} for an env id (following "same_as"),
    else "default"."""
    table = json.loads(Path(path).read_text())
    key = env_id.split(":")[-1]
    entry = table.get(key, table["default"])
    while "same_as" in entry:
        entry = table[entry["same_as"]]
    default = table["default"]
    return {
        "steps": entry.get("steps", default["steps"]),
        "num_envs": entry.get("num_envs", default["num_envs"]),
        "frame_stack": entry.get("frame_stack", default.get("frame_stack", 1)),
        "kwargs": dict(entry.get(algo, default[algo])),
    }


def make_vec_env(
    env_id: str,
    num_envs: int,
    bundle: str | os.PathLike | None = None,
    device: str = "cpu",
    seed: int = 0,
    frame_stack: int = 1,
) -> Any:
    """An SB3 VecEnv: a batched dream env for dream ids, else monitored real envs; with
    `frame_stack` > 1, wrapped in `VecFrameStack` (channels last)."""
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack, VecMonitor

    import envs  # noqa: F401  (registers dreamgym ids)

    if frame_stack < 1:
        raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
    if is_dream(env_id):
        from envs.dream_vector import DreamSB3VecEnv

        bundle = bundle or gym.spec(env_id).kwargs.get("bundle")
        venv = VecMonitor(DreamSB3VecEnv(num_envs, bundle=bundle, device=device))
        venv.seed(seed)
    elif bundle is not None:
        raise ValueError(f"--bundle only applies to dream envs, not {env_id}")
    else:
        venv = sb3_make_vec_env(env_id, n_envs=num_envs, seed=seed)
    if frame_stack == 1:
        return venv
    if len(venv.observation_space.shape or ()) != 3:
        raise ValueError(
            f"frame_stack={frame_stack} stacks image channels; {env_id} observes "
            f"{venv.observation_space}: use frame_stack=1"
        )
    return VecFrameStack(venv, frame_stack, channels_order="last")


COUNTS = ("n_steps", "batch_size", "n_epochs", "buffer_size", "frame_stack")  # settings that count


def check_algo_kwargs(algo: str, kwargs: dict[str, Any]) -> None:
    """Raise a clear error for arguments the SB3 algorithm does not take (besides our
    `frame_stack`), a text where it takes a number (`--set` values), a count below 1, or a
    `policy_kwargs` that is not a dict."""
    import inspect

    import stable_baselines3

    params = inspect.signature(getattr(stable_baselines3, algo.upper())).parameters
    unknown = sorted(set(kwargs) - set(params) - {"policy", "env", "frame_stack"})
    if unknown:
        known = sorted(set(params) - {"policy", "env", "self"})
        raise ValueError(f"{algo.upper()} takes no argument(s) {unknown}; it takes {known}")
    for key, value in kwargs.items():
        default = params[key].default if key in params else 1
        number = isinstance(default, (int, float)) and not isinstance(default, bool)
        if number and isinstance(value, str):
            raise ValueError(f"{algo.upper()}'s {key} must be a number, got {value!r}")
        if key in COUNTS and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{algo.upper()}'s {key} must be an integer >= 1, got {value!r}")
    if kwargs.get("policy_kwargs") is not None and not isinstance(kwargs["policy_kwargs"], dict):
        raise ValueError(
            f"{algo.upper()}'s policy_kwargs must be a dict, got {kwargs['policy_kwargs']!r}"
        )


def build_model(
    algo: str,
    venv: Any,
    kwargs: dict,
    tensorboard: str | None,
    device: str,
    seed: int,
    load_from: Path | None = None,
):
    """An SB3 model for `venv` (the one saved at `load_from` when given, its RNG reseeded
    past its steps); DQN only for Discrete actions."""
    import stable_baselines3

    algo = algo.lower()
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {algo!r}")
    if algo == "dqn" and not isinstance(venv.action_space, spaces.Discrete):
        raise ValueError(
            f"DQN needs Discrete actions; this env has {venv.action_space}: use ppo/a2c"
        )
    obs = venv.observation_space
    if isinstance(obs, spaces.Dict):
        raise ValueError(
            f"SB3 baselines here read images or flat vectors, not {obs}; train them on the pixel "
            "env (e.g. MiniGridPixels-DoorKey-8x8-v0), or a diffusion policy on this one"
        )
    image = isinstance(obs, spaces.Box) and obs.dtype == np.uint8 and len(obs.shape) == 3
    policy = "CnnPolicy" if image else "MlpPolicy"
    cls = getattr(stable_baselines3, algo.upper())
    if load_from is None:
        try:
            return cls(
                policy,
                venv,
                tensorboard_log=tensorboard,
                device=device,
                seed=seed,
                verbose=0,
                **kwargs,
            )
        except AssertionError as err:  # SB3 checks its arguments with asserts
            raise ValueError(f"{algo.upper()} refuses these settings: {err}") from err
    model = cls.load(str(load_from), env=venv, device=device, tensorboard_log=tensorboard)
    model.set_random_seed(seed + model.num_timesteps)
    return model


def resumed_logger(log_dir: Path, algo: str, start: int) -> Any:
    """SB3's TensorBoard logger for a run resumed at step `start`: it writes on in the killed
    run's folder (`ALGO_N`, the newest) and hides what that run logged after its checkpoint,
    as the other trainers' logs do (`purge_step`)."""
    from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
    from stable_baselines3.common.utils import get_latest_run_id
    from torch.utils.tensorboard import SummaryWriter

    name = algo.upper()
    folder = str(log_dir / f"{name}_{max(get_latest_run_id(str(log_dir), name), 1)}")
    output = TensorBoardOutputFormat(folder)
    output.writer.close()
    output.writer = SummaryWriter(folder, purge_step=start + 1)
    return Logger(folder, [output])


def real_eval_callback(
    eval_env: str, every: int, episodes: int, log_dir: Path, sample: bool = True
):
    """SB3 callback: every `every` steps score the agent in `eval_env` (drawing its actions,
    or with `sample` False taking the most likely) and write `train` and `real` curves to the
    "return" chart (`agents.return_chart`); on resume the points a killed run logged past its
    checkpoint are hidden."""
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.evaluation import evaluate_policy
    from agents.return_chart import ReturnChart
    from experiments.policy_loading import SB3Policy

    class RealEval(BaseCallback):
        def _on_training_start(self) -> None:
            env = gym.make(eval_env)  # an agent that cannot act there fails now, not mid-run
            SB3Policy(self.model).reset(env, seed=0)
            env.close()
            start = self.num_timesteps
            self.chart = ReturnChart(log_dir, purge_step=start + 1 if start else None)
            self.next_eval = (self.num_timesteps // every + 1) * every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.next_eval += every
                policy = SB3Policy(self.model, sample)
                real = evaluate_policy(policy, eval_env, episodes, progress=False)["mean_return"]
                buf = self.model.ep_info_buffer
                scalars = {"real": real}
                if buf:
                    scalars["train"] = float(np.mean([e["r"] for e in buf]))
                self.chart.add(scalars, self.num_timesteps)
                self.logger.record("eval/real_return", real)
            return True

        def _on_training_end(self) -> None:
            self.chart.close()

    return RealEval()


def progress_callback(total: int):
    """SB3 callback: a tqdm bar of env steps, which (unlike SB3's rich bar) also updates in a
    log file."""
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm import tqdm

    class Progress(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = tqdm(total=total, initial=self.num_timesteps, unit="step", desc="train")

        def _on_step(self) -> bool:
            self.bar.update(self.num_timesteps - self.bar.n)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return Progress()


def save_atomic(model: Any, path: Path) -> None:
    """`model.save` to a temporary file, then rename it over `path`."""
    tmp = path.with_name(f".{path.stem}.tmp.zip")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(tmp))
    publish(tmp, path)


def checkpoint_callback(path: Path, every: int):
    """SB3 callback: save the model to `path` when `every` steps have passed since the last
    save, at the start of a rollout (after the previous rollout's update: SB3 trains after
    `on_rollout_end`)."""
    from stable_baselines3.common.callbacks import BaseCallback

    if every < 1:
        raise ValueError(f"ckpt_every must be >= 1, got {every}")

    class Checkpoint(BaseCallback):
        def _on_training_start(self) -> None:
            self.last = self.num_timesteps

        def _on_step(self) -> bool:
            return True

        def _on_rollout_start(self) -> None:
            if self.num_timesteps - self.last >= every:
                self.last = self.num_timesteps
                save_atomic(self.model, path)

    return Checkpoint()


def train_sb3(
    algo: str,
    env_id: str,
    run_dir: str | os.PathLike,
    steps: int | None = None,
    bundle: str | os.PathLike | None = None,
    num_envs: int | None = None,
    eval_env: str | None = None,
    eval_every: int = 0,
    eval_episodes: int = 10,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    config_path: str | os.PathLike = CONFIG_PATH,
    ckpt_every: int = 10_000,
    resume: bool = False,
) -> Path:
    """Train an SB3 agent in `env_id` (dream or real) for `steps` env steps in all (with
    `resume`, from the run's checkpoint on, with the settings recorded in its run.json; a
    larger `steps` extends it) with a progress bar; saves and returns
    `run_dir/ALGO.zip`. `overrides` may set `frame_stack` beside the algorithm's arguments."""
    from world_models.runs import prepare_run

    run_dir = Path(run_dir)
    settings = agent_settings(env_id, algo.lower(), config_path)
    kwargs = {**settings["kwargs"], **(overrides or {})}
    frame_stack = kwargs.pop("frame_stack", settings["frame_stack"])
    steps = settings["steps"] if steps is None else steps
    num_envs = settings["num_envs"] if num_envs is None else num_envs
    if eval_env and is_dream(eval_env):
        raise ValueError(f"--eval-env must be a real env, got {eval_env}")
    record = {
        "algo": algo.lower(),
        "env": env_id,
        "bundle": str(bundle) if bundle else None,
        "steps": steps,
        "num_envs": num_envs,
        "frame_stack": frame_stack,
        "kwargs": json.loads(json.dumps(kwargs, default=str)),  # classes as their names
        "seed": seed,
    }
    record = prepare_run(
        run_dir, record, resume, must_match=("algo", "env", "frame_stack"), steps_key=("steps",)
    )
    steps, num_envs, seed, bundle = (record[k] for k in ("steps", "num_envs", "seed", "bundle"))
    check_algo_kwargs(algo, {**kwargs, "frame_stack": frame_stack})
    checkpoint = run_dir / "checkpoints" / "latest.zip"
    if resume and not checkpoint.is_file():
        raise FileNotFoundError(f"--resume: {checkpoint} not found")
    load_from = checkpoint if resume else None
    venv = make_vec_env(env_id, num_envs, bundle, device, seed, frame_stack)
    model = build_model(
        algo, venv, kwargs, str(run_dir / "tensorboard"), device, seed, load_from=load_from
    )
    if resume:
        model.set_logger(resumed_logger(run_dir / "tensorboard", algo, model.num_timesteps))
    callbacks = [progress_callback(steps), checkpoint_callback(checkpoint, ckpt_every)]
    if eval_env and eval_every > 0:
        callbacks.append(
            # the policy PPO and A2C learn draws its actions (their argmax can loop in place);
            # DQN's is greedy
            real_eval_callback(
                eval_env, eval_every, eval_episodes, run_dir / "tensorboard", algo.lower() != "dqn"
            )
        )
    model.learn(
        total_timesteps=max(steps - model.num_timesteps, 0),
        callback=callbacks,
        reset_num_timesteps=not resume,
    )
    path = run_dir / f"{algo.lower()}.zip"
    save_atomic(model, path)
    save_atomic(model, checkpoint)
    venv.close()
    return path
