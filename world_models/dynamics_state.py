"""The KV cache over past frames of a batch of rollouts: the dynamics model's inference state,
and the transformer tokenizer's decoder cache when it decodes a rollout frame by frame."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from world_models.layers import KV


@dataclass
class DynamicsState:
    """Inference state for a batch of B rollouts.

    kv: per time-attention layer (k, v), each (B*S, H_kv, L, head_dim), rows grouped by batch.
    valid: (B, L) bool, False for left padding (rows started with shorter contexts).
    position: (B,) frame position of the next generated frame in each row.
    """

    kv: list[KV]
    valid: torch.Tensor
    position: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.valid.shape[0]

    def attend_mask(self) -> torch.Tensor | None:
        """(B, L + 1) bool over the cache and one new frame, True = may attend; None when no
        row's cache has left padding (every key may be attended)."""
        if bool(self.valid.all()):
            return None
        ones = torch.ones(self.batch_size, 1, dtype=torch.bool, device=self.valid.device)
        return torch.cat((self.valid, ones), 1)

    def advance(self, kv: list[KV], keep: int) -> DynamicsState:
        """The state after one frame per row was written: `kv` holds this cache plus the new
        frame's keys and values; only the last `keep` frames stay (a sliding window)."""
        drop = max(self.valid.shape[1] + 1 - keep, 0)
        kv = [(k[:, :, drop:], v[:, :, drop:]) for k, v in kv]
        ones = torch.ones(self.batch_size, 1, dtype=torch.bool, device=self.valid.device)
        valid = torch.cat((self.valid, ones), 1)[:, drop:]
        return DynamicsState(kv, valid, self.position + 1)

    def repeated(self, m: int) -> DynamicsState:
        """The state with each row repeated m times in adjacent rows (itself when m = 1)."""
        if m == 1:
            return self
        b = self.batch_size
        kv = [
            tuple(x.unflatten(0, (b, -1)).repeat_interleave(m, 0).flatten(0, 1) for x in layer)
            for layer in self.kv
        ]
        return DynamicsState(
            kv, self.valid.repeat_interleave(m, 0), self.position.repeat_interleave(m, 0)
        )

    def _padded(self, length: int) -> DynamicsState:
        pad = length - self.valid.shape[1]
        if pad == 0:
            return self
        kv = [tuple(F.pad(x, (0, 0, pad, 0)) for x in layer) for layer in self.kv]
        valid = F.pad(self.valid, (pad, 0), value=False)
        return DynamicsState(kv, valid, self.position)

    def replace_rows(self, rows: torch.Tensor, other: DynamicsState) -> DynamicsState:
        """A new state where batch rows `rows` come from `other` (e.g. envs that were reset)."""
        rows = torch.as_tensor(rows, device=self.valid.device).long()
        if len(rows) != other.batch_size:
            raise ValueError(
                f"{len(rows)} rows to replace but the new state has {other.batch_size}"
            )
        length = max(self.valid.shape[1], other.valid.shape[1])
        a, b = self._padded(length), other._padded(length)
        s = a.kv[0][0].shape[0] // a.batch_size if a.kv else 1
        flat = (rows[:, None] * s + torch.arange(s, device=rows.device)).flatten()
        kv = []
        for (ka, va), (kb, vb) in zip(a.kv, b.kv, strict=True):
            ka, va = ka.clone(), va.clone()
            ka[flat], va[flat] = kb, vb
            kv.append((ka, va))
        valid, position = a.valid.clone(), a.position.clone()
        valid[rows], position[rows] = b.valid, b.position
        return DynamicsState(kv, valid, position)
