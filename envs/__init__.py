"""dreamgym environments. Importing this package registers every id with Gymnasium.

`gym.make("envs:MovingMNIST-v0")` imports it on the fly, so no separate import is needed.
Dream ids load a world-model bundle: the one shipped in `envs/bundles/<name>/` unless
`bundle=PATH` is given; every dream id also takes `device=`.
"""

from __future__ import annotations

from pathlib import Path

from gymnasium.envs.registration import register, registry

BUNDLES_DIR = Path(__file__).parent / "bundles"

_MINIGRID_TASKS = {
    "MiniGridPixels-Empty-8x8-v0": "MiniGrid-Empty-8x8-v0",
    "MiniGridPixels-DoorKey-8x8-v0": "MiniGrid-DoorKey-8x8-v0",
}
# the same tasks with MiniGrid's symbolic grid as the observation (for policies, not dreams)
_MINIGRID_SYMBOLIC = {
    env_id.replace("MiniGridPixels-", "MiniGridSymbolic-"): task
    for env_id, task in _MINIGRID_TASKS.items()
}

# dream id -> folder of its shipped bundle under envs/bundles/
_DREAMS = {
    "Dream-League-v0": "league",
    "Dream-MiniGrid-DoorKey-8x8-v0": "minigrid-doorkey-8x8",
    "Dream-MovingMNIST-v0": "moving-mnist",
}


def _register(env_id: str, entry_point: str, **kwargs) -> None:
    if env_id not in registry:
        register(id=env_id, entry_point=entry_point, kwargs=kwargs)


def _register_dream(env_id: str, bundle: str | None) -> None:
    if env_id not in registry:
        register(
            id=env_id,
            entry_point="envs.dream:DreamEnv",
            vector_entry_point="envs.dream_vector:DreamVectorEnv",
            kwargs={} if bundle is None else {"bundle": str(BUNDLES_DIR / bundle)},
        )


def register_all() -> None:
    """Register every dreamgym id (idempotent)."""
    for env_id, task in _MINIGRID_TASKS.items():
        _register(env_id, "envs.minigrid:MiniGridPixelsEnv", task=task)
    for env_id, task in _MINIGRID_SYMBOLIC.items():
        _register(env_id, "envs.minigrid:MiniGridPixelsEnv", task=task, obs_mode="symbolic")
    _register("MovingMNIST-v0", "envs.moving_mnist:MovingMNISTEnv")
    _register("LaneSim-v0", "envs.lane:LaneSimEnv")
    _register_dream("Dream-v0", None)
    for env_id, name in _DREAMS.items():
        _register_dream(env_id, name)


register_all()
