"""The "return" TensorBoard chart: imagined (or training) and real-env return as curves of one
chart, so the gap between the dream and the real env is a picture.

Laid out as `SummaryWriter.add_scalars` lays it out (one run folder `<log_dir>/return_<curve>`
per curve, each logging the tag "return"), but each curve has its own `SummaryWriter`, which
takes a purge step: a resumed run hides what a killed one logged after its last checkpoint
(`add_scalars` writes through sub-writers that take none, so resumed charts repeated steps).
"""

from __future__ import annotations

import os
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

TAG = "return"


class ReturnChart:
    """Curves of the "return" chart under `log_dir`; `purge_step` (a resumed run's first step)
    hides every point a killed run wrote at or after it."""

    def __init__(self, log_dir: str | os.PathLike, purge_step: int | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.purge_step = purge_step
        self._writers: dict[str, SummaryWriter] = {}

    def add(self, values: dict[str, float], step: int) -> None:
        """One point per curve, e.g. {"dream": 0.4, "real": 0.1} at `step`."""
        for curve, value in values.items():
            writer = self._writers.get(curve)
            if writer is None:
                writer = SummaryWriter(
                    str(self.log_dir / f"{TAG}_{curve}"), purge_step=self.purge_step
                )
                self._writers[curve] = writer
            writer.add_scalar(TAG, value, step)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
