"""What the envs here accept as whole numbers and as actions of their spaces."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces


def is_integral(array: np.ndarray) -> bool:
    """Integers, or floats that are all finite whole numbers (2.0): MiniGrid, LaneSim and the
    dream envs take both for Discrete and MultiDiscrete actions."""
    if array.dtype.kind in "iu":
        return True
    return array.dtype.kind == "f" and bool(
        np.isfinite(array).all() and (array == np.round(array)).all()
    )


def whole_number(value: Any, name: str, low: int = 1) -> int:
    """`value` as an int >= `low`: an integer, a whole float (2.0) or a 0-d array or tensor of
    one, or integer text ("2"); anything else is a clear ValueError naming `name`."""
    number = None
    if isinstance(value, str):
        digits = value.strip().lstrip("+-")
        number = int(value) if digits.isascii() and digits.isdigit() else None
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError, RuntimeError):  # e.g. a CUDA tensor
            array = np.asarray(None)
        if array.ndim == 0 and is_integral(array):
            number = int(array)
    if number is None or number < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    return number


def check_actions(actions: Any, space: spaces.Space, batch: tuple[int, ...]) -> np.ndarray:
    """Validate actions of shape (*batch, *action shape) against `space`: integral and in range
    for Discrete and MultiDiscrete (as int64), finite numbers for Box, clipped to its bounds
    (Gymnasium's convention; as float32). Raises a clear ValueError."""
    shape = (*batch, *space.shape)
    try:
        array = np.asarray(actions)
    except (TypeError, ValueError) as err:
        raise ValueError(f"action {actions!r} is not an array of {space}") from err
    if array.shape != shape:
        raise ValueError(
            f"action has shape {array.shape}, expected {shape} for action space {space}"
        )
    if isinstance(space, spaces.Box):
        if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
            raise ValueError(f"action {actions!r} must be finite numbers for {space}")
        return np.clip(array, space.low, space.high).astype(np.float32)
    if not is_integral(array):
        raise ValueError(f"action {actions!r} must be integers for {space}")
    if isinstance(space, spaces.Discrete):
        low, high = space.start, space.start + space.n
    else:
        low, high = space.start, space.start + space.nvec
    if np.any(array < low) or np.any(array >= high):
        raise ValueError(f"action {actions!r} is outside the action space {space}")
    return array.astype(np.int64)
