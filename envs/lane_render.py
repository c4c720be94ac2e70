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
        self.margin = m = math.ceil(11 * s) + 2  # sprites and rings near the edge stay in bounds
        self.ox = self.half + m + 1  # background column of world x = 0
        self.oy = self.half + m + 1 + round(ls.HALF_HEIGHT * s)  # background row of world y = 0
        width = self.ox + round(ls.LANE_LENGTH * s) + self.half + m + 2
        height = self.oy + round(ls.HALF_HEIGHT * s) + self.half + m + 2
        self.background = self._background(height, width)
        self.shapes = {k: _resize(v, s) for k, v in _SHAPES.items()}
        self.bar_width = {k: max(2, round(v * s)) for k, v in _BAR_WIDTH.items()}
        self.bar_height = max(1, round(s))
        self.frame_width = max(1, round(s))
        self.ring = self._ring(ls.E_RADIUS * s)
        self.hud = max(2, round(3 * s))

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

    @staticmethod
    def _ring(radius: float) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) offsets of a one-pixel circle of `radius` pixels."""
        r = math.ceil(radius)
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        on = np.abs(np.hypot(yy, xx) - radius) <= 0.5
        return yy[on], xx[on]


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
        u, ch = sim.units, sim.champs
        span = a.size + 2 * a.margin
        cam_c = round(u["x"][ls.PLAYER] * a.scale)
        cam_r = round(u["y"][ls.PLAYER] * a.scale)
        top = a.oy + cam_r - a.half - a.margin
        left = a.ox + cam_c - a.half - a.margin
        canvas = a.background[top : top + span, left : left + span].copy()
        cols = np.rint(u["x"] * a.scale).astype(np.intp) - cam_c + a.half + a.margin
        rows = np.rint(u["y"] * a.scale).astype(np.intp) - cam_r + a.half + a.margin
        kind, hp = u["kind"], u["hp"]
        lo, hi = a.margin // 2, span - a.margin // 2
        visible = (kind != ls.EMPTY) & (hp > 0) & (cols >= lo) & (cols < hi)
        visible &= (rows >= lo) & (rows < hi)
        visible[:2] = False
        for i in np.flatnonzero(visible):
            self._unit(canvas, int(rows[i]), int(cols[i]), int(kind[i]), int(u["team"][i]))
            self._bar(canvas, int(rows[i]), int(cols[i]), int(kind[i]), hp[i] / u["max_hp"][i],
                      BAR_FILL[int(u["team"][i])])
        for c in (ls.ENEMY, ls.PLAYER):
            if hp[c] > 0 and lo <= cols[c] < hi and lo <= rows[c] < hi:
                self._champion(canvas, sim, c, int(rows[c]), int(cols[c]))
        frame = canvas[a.margin : a.margin + a.size, a.margin : a.margin + a.size]
        self._hud(frame, ch["cooldown"][ls.PLAYER])
        if ch["respawn"][ls.PLAYER] > 0:
            frame //= 3
            frame[: a.bar_height, : round(a.size * ch["respawn"][ls.PLAYER] / ls.RESPAWN_STEPS)] = 255
        return np.ascontiguousarray(frame)

    def _paint(self, canvas: np.ndarray, r: int, c: int, shape: np.ndarray, colours) -> None:
        h, w = shape.shape
        patch = canvas[r - h // 2 : r - h // 2 + h, c - w // 2 : c - w // 2 + w]
        for value, colour in enumerate(colours, start=1):
            patch[shape == value] = colour

    def _unit(self, canvas: np.ndarray, r: int, c: int, kind: int, team: int) -> None:
        if kind == ls.TOWER:
            colours = (TOWER_BODY[team], TOWER_TOP[team])
        else:
            colours = (MINION[team][kind == ls.RANGED],)
        self._paint(canvas, r, c, self.a.shapes[kind], colours)

    def _bar(self, canvas, r: int, c: int, kind: int, frac: float, colour) -> None:
        a = self.a
        w, bh = a.bar_width[kind], a.bar_height
        top = r - a.shapes[kind].shape[0] // 2 - 1 - bh
        left = c - w // 2
        canvas[top : top + bh, left : left + w] = BAR_BACK
        canvas[top : top + bh, left : left + max(1, round(w * min(frac, 1.0)))] = colour

    def _champion(self, canvas: np.ndarray, sim: ls.LaneSim, c: int, r: int, col: int) -> None:
        a, ch = self.a, sim.champs
        if ch["e_spin"][c] > 0:
            canvas[r + a.ring[0], col + a.ring[1]] = SPIN
        shape = a.shapes[ls.CHAMPION]
        if ch["w_buff"][c] > 0:
            h, w, f = shape.shape[0], shape.shape[1], a.frame_width
            canvas[r - h // 2 - f : r - h // 2 + h + f, col - w // 2 - f : col - w // 2 + w + f] = (
                255
            )
        colour = EMPOWERED if ch["q_buff"][c] > 0 else CHAMP[c]
        self._paint(canvas, r, col, shape, (colour,))
        u = sim.units
        fill = PLAYER_BAR if c == ls.PLAYER else BAR_FILL[1]
        self._bar(canvas, r - a.frame_width, col, ls.CHAMPION, u["hp"][c] / u["max_hp"][c], fill)

    def _hud(self, frame: np.ndarray, cooldown: np.ndarray) -> None:
        k = self.a.hud
        top = self.a.size - k - 1
        for i in range(4):
            left = 1 + i * (k + 1)
            frame[top : top + k, left : left + k] = HUD_READY[i] if cooldown[i] == 0 else HUD_COOLING
