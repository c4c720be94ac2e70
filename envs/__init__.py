"""dreamgym environments. Importing this package registers every id with Gymnasium.

`gym.make("envs:MovingMNIST-v0")` imports it on the fly, so no separate import is needed.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

_MINIGRID_TASKS = {
    "MiniGridPixels-Empty-8x8-v0": "MiniGrid-Empty-8x8-v0",
    "MiniGridPixels-DoorKey-8x8-v0": "MiniGrid-DoorKey-8x8-v0",
}


def _register(env_id: str, entry_point: str, **kwargs) -> None:
    if env_id not in registry:
        register(id=env_id, entry_point=entry_point, kwargs=kwargs)


def register_all() -> None:
    """Register every dreamgym id (idempotent)."""
    for env_id, task in _MINIGRID_TASKS.items():
        _register(env_id, "envs.minigrid:MiniGridPixelsEnv", task=task)
    _register("MovingMNIST-v0", "envs.moving_mnist:MovingMNISTEnv")
    _register("LaneSim-v0", "envs.lane:LaneSimEnv")


register_all()
