"""LaneSim drawing: a camera locked on the player's champion, in numpy slices only.

The lane background (ground, grass, walls, bases, tower range rings) is drawn once per image
size; each frame is a crop of it plus small sprites and health bars. The camera shows `VIEW` x
`VIEW` world units at any `image_size`. Colours: allies blue, enemies red (ranged minions
lighter and cross-shaped), the player's champion yellow, the enemy champion magenta, towers
dark blue / dark red with a light top. The empowered strike (Q) turns a champion white, the
shield (W) gives it a white frame, the spin (E) draws a ring of its radius. Bottom-left HUD:
Q, W, E, R squares, lit when ready. While the player is dead the frame is darkened and a white
bar at the top shows the time left to respawn.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from envs import lane_sim as ls

VIEW = 64.0
WALL = (16, 16, 26)
GRASS = (34, 72, 40)
GROUND = (122, 106, 80)
BASE = ((56, 74, 132), (132, 56, 56))
RING = ((92, 132, 206), (206, 84, 84))
MINION = (((40, 110, 255), (140, 190, 255)), ((235, 40, 40), (255, 150, 120)))
CHAMP = ((255, 220, 40), (235, 50, 235))
EMPOWERED = (255, 255, 235)
TOWER_BODY = ((30, 60, 170), (150, 20, 20))
TOWER_TOP = ((170, 205, 255), (255, 170, 160))
BAR_BACK = (12, 12, 12)
BAR_FILL = ((80, 160, 255), (255, 70, 70))
PLAYER_BAR = (60, 235, 60)
SPIN = (255, 240, 170)
HUD_READY = ((255, 200, 0), (210, 210, 255), (255, 120, 0), (255, 40, 120))
HUD_COOLING = (70, 70, 70)

# Sprite shapes at 1 pixel per unit: 1 = body, 2 = highlight.
_SHAPES = {
    ls.MELEE: np.ones((3, 3), np.int8),
    ls.RANGED: np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.int8),
    ls.CHAMPION: np.array(
        [[0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0]],
        np.int8,
    ),
    ls.TOWER: np.array([[2] * 5] * 2 + [[1] * 5] * 5, np.int8),
}
_BAR_WIDTH = {ls.MELEE: 4, ls.RANGED: 4, ls.CHAMPION: 7, ls.TOWER: 7}


def _resize(mask: np.ndarray, scale: float) -> np.ndarray:
    """Nearest-neighbour resize of a small mask by `scale` (at least one pixel per side)."""
    h, w = mask.shape
    rows = (np.arange(max(1, round(h * scale))) * h / max(1, round(h * scale))).astype(int)
    cols = (np.arange(max(1, round(w * scale))) * w / max(1, round(w * scale))).astype(int)
    return mask[rows][:, cols]


class _Assets:
    """Everything precomputed for one image size."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.scale = s = size / VIEW  # pixels per world unit
        self.half = size // 2
        # Units whose centre is within `reach` pixels of the frame are drawn; every drawing
        # (sprite, bars, spin ring) spans at most `reach` pixels from its centre.
        self.reach = math.ceil(max(ls.E_RADIUS, 6.0) * s) + 2
        self.margin = m = 2 * self.reach + 1
        self.ox = self.half + m + 1  # background column of world x = 0
        self.oy = self.half + m + 1 + round(ls.HALF_HEIGHT * s)  # background row of world y = 0
        width = self.ox + round(ls.LANE_LENGTH * s) + self.half + m + 2
        height = self.oy + round(ls.HALF_HEIGHT * s) + self.half + m + 2
        self.background = self._background(height, width)
        self.shapes = {k: _resize(v, s) for k, v in _SHAPES.items()}
        self.bar_width = np.zeros(5, np.intp)  # by kind
        for k, v in _BAR_WIDTH.items():
            self.bar_width[k] = max(2, round(v * s))
        self._patches: dict[tuple, tuple[int, int, np.ndarray, np.ndarray]] = {}
        self.bar_height = max(1, round(s))
        self.frame_width = max(1, round(s))
        self.ring = self._ring(ls.E_RADIUS * s)
        self.hud = self._hud_patches(max(2, round(3 * s)))

    def _background(self, height: int, width: int) -> np.ndarray:
        s = self.scale
        wx = (np.arange(width) - self.ox + 0.5) / s  # world x of each column centre
        wy = (np.arange(height) - self.oy + 0.5) / s
        x, y = wx[None, :], wy[:, None]
        img = np.empty((height, width, 3), np.uint8)
        img[:] = WALL
        world = (x >= 0) & (x <= ls.LANE_LENGTH) & (np.abs(y) <= ls.HALF_HEIGHT)
        img[world] = GRASS
        img[world & (np.abs(y) <= ls.LANE_HALF_WIDTH)] = GROUND
        img[world & (x < ls.BASE_DEPTH)] = BASE[0]
        img[world & (x > ls.LANE_LENGTH - ls.BASE_DEPTH)] = BASE[1]
        for team in (0, 1):
            d = np.hypot(x - ls.TOWER_X[team], y - ls.TOWER_Y)
            img[world & (np.abs(d - ls.TOWER_RANGE) <= 0.5 / s)] = RING[team]
        return img

    def unit_patch(
        self, kind: int, team: int, fill: int, player: bool, empowered: bool
    ) -> tuple[int, int, np.ndarray, np.ndarray]:
        """A unit's sprite with its health bar (`fill` pixels full) above it, as (rows above
        the centre, columns left of the centre, (h, w, 3) patch, (h, w, 1) opaque mask)."""
        key = (kind, team, fill, player, empowered)
        if key not in self._patches:
            shape = self.shapes[kind]
            h, w = shape.shape
            bw, bh = int(self.bar_width[kind]), self.bar_height
            gap = 1 + (self.frame_width if kind == ls.CHAMPION else 0)  # room for W's frame
            left = max(w // 2, bw // 2)
            patch = np.zeros((bh + gap + h, left + max(w - w // 2, bw - bw // 2), 3), np.uint8)
            mask = np.zeros(patch.shape[:2] + (1,), bool)
            if kind == ls.TOWER:
                colours = (TOWER_BODY[team], TOWER_TOP[team])
            elif kind == ls.CHAMPION:
                colours = (EMPOWERED if empowered else CHAMP[team],)
            else:
                colours = (MINION[team][kind == ls.RANGED],)
            body = patch[bh + gap :, left - w // 2 : left - w // 2 + w]
            for value, colour in enumerate(colours, start=1):
                body[shape == value] = colour
            mask[bh + gap :, left - w // 2 : left - w // 2 + w, 0] = shape > 0
            bar = patch[:bh, left - bw // 2 : left - bw // 2 + bw]
            bar[:] = BAR_BACK
            bar[:, :fill] = PLAYER_BAR if player else BAR_FILL[team]
            mask[:bh, left - bw // 2 : left - bw // 2 + bw] = True
            self._patches[key] = (h // 2 + gap + bh, left, patch, mask)
        return self._patches[key]

    @staticmethod
    def _ring(radius: float) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) offsets of a one-pixel circle of `radius` pixels."""
        r = math.ceil(radius)
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        on = np.abs(np.hypot(yy, xx) - radius) <= 0.5
        return yy[on], xx[on]

    @staticmethod
    def _hud_patches(k: int) -> dict[tuple[bool, ...], np.ndarray]:
        """Q, W, E, R squares on a black strip, one patch per combination of ready flags."""
        patches = {}
        for flags in np.ndindex(2, 2, 2, 2):
            patch = np.zeros((k + 2, 4 * (k + 1) + 1, 3), np.uint8)
            for i, ready in enumerate(flags):
                left = 1 + i * (k + 1)
                patch[1 : 1 + k, left : left + k] = HUD_READY[i] if ready else HUD_COOLING
            patches[tuple(bool(f) for f in flags)] = patch
        return patches


@lru_cache(maxsize=8)
def _assets(size: int) -> _Assets:
    return _Assets(size)


class LaneRenderer:
    """Draws `LaneSim` states as (size, size, 3) uint8 frames centred on the player."""

    def __init__(self, image_size: int = 64) -> None:
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")
        self.a = _assets(int(image_size))

    def draw(self, sim: ls.LaneSim) -> np.ndarray:
        a = self.a
        u, tm = sim.units, sim.timers
        span = a.size + 2 * a.margin
        cam_c = round(float(u["x"][ls.PLAYER]) * a.scale)
        cam_r = round(float(u["y"][ls.PLAYER]) * a.scale)
        top = a.oy + cam_r - a.half - a.margin
        left = a.ox + cam_c - a.half - a.margin
        canvas = a.background[top : top + span, left : left + span].copy()
        cols = np.rint(u["x"] * a.scale).astype(np.intp) - (cam_c - a.half - a.margin)
        rows = np.rint(u["y"] * a.scale).astype(np.intp) - (cam_r - a.half - a.margin)
        kind, hp = u["kind"], u["hp"]
        lo, hi = a.margin - a.reach, span - a.margin + a.reach
        visible = (kind != ls.EMPTY) & (hp > 0) & (cols >= lo) & (cols < hi)
        visible &= (rows >= lo) & (rows < hi)
        idx = np.flatnonzero(visible)[::-1]  # minions first, the player's champion on top
        width = a.bar_width[kind[idx]]
        fills = np.maximum(1, np.rint(width * hp[idx] / u["max_hp"][idx])).astype(np.intp)
        for i, r, c, k, team, fill in zip(
            idx.tolist(),
            rows[idx].tolist(),
            cols[idx].tolist(),
            kind[idx].tolist(),
            u["team"][idx].tolist(),
            np.minimum(fills, width).tolist(),
            strict=True,
        ):
            empowered = False
            if i < 2:
                self._champion_effects(canvas, tm[i], r, c)
                empowered = bool(tm[i, ls.Q_BUFF] > 0)
            dr, dc, patch, mask = a.unit_patch(k, team, fill, i == ls.PLAYER, empowered)
            np.copyto(
                canvas[r - dr : r - dr + patch.shape[0], c - dc : c - dc + patch.shape[1]],
                patch,
                where=mask,
            )
        frame = canvas[a.margin : a.margin + a.size, a.margin : a.margin + a.size]
        ready = tm[ls.PLAYER, :4] == 0
        hud = a.hud[bool(ready[0]), bool(ready[1]), bool(ready[2]), bool(ready[3])]
        frame[a.size - hud.shape[0] :, : hud.shape[1]] = hud
        if tm[ls.PLAYER, ls.RESPAWN] > 0:
            frame //= 3
            width = round(a.size * int(tm[ls.PLAYER, ls.RESPAWN]) / ls.RESPAWN_STEPS)
            frame[: a.bar_height, :width] = 255
        return np.ascontiguousarray(frame)

    def _champion_effects(self, canvas: np.ndarray, timers: np.ndarray, r: int, c: int) -> None:
        """The spin ring (E) and the shield frame (W) under a champion's sprite."""
        a = self.a
        if timers[ls.E_SPIN] > 0:
            canvas[r + a.ring[0], c + a.ring[1]] = SPIN
        if timers[ls.W_BUFF] > 0:
            h = a.shapes[ls.CHAMPION].shape[0] // 2 + a.frame_width
            canvas[r - h : r + h + 1, c - h : c + h + 1] = 255
