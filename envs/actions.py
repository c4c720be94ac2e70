"""What every env here accepts as a discrete action value."""

from __future__ import annotations

import numpy as np


def is_integral(array: np.ndarray) -> bool:
    """Integers, or floats that are all finite whole numbers (2.0): MiniGrid, LaneSim and the
    dream envs take both for Discrete and MultiDiscrete actions."""
    if array.dtype.kind in "iu":
        return True
    return array.dtype.kind == "f" and bool(
        np.isfinite(array).all() and (array == np.round(array)).all()
    )
