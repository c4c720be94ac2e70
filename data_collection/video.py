"""Gameplay videos (plus an optional per-frame label file) as Minari datasets with LaneSim's spaces.

Source: a video file (mp4, webm, avi, ... read by imageio-ffmpeg's bundled ffmpeg; the source fps
comes from the file, `source_fps` overrides it) or a folder of PNG/JPG frames (sorted by name,
runs of digits compared as numbers; `source_fps` defaults to `fps`). One source = one episode.

Resampling: output step t shows the source frame nearest in time, `j(t) = floor(t * S / F + 0.5)`
(S source fps, F output fps), for every t with j(t) inside the source. Resizing to
`size` x `size`: "squash" stretches the frame, "letterbox" keeps its aspect ratio and pads with
black. The dataset uses LaneSim-v0's spaces: observations `Box(0, 255, (size, size, 3), uint8)`,
actions `MultiDiscrete([21, 21, 2, 2, 2, 2, 2])` (its metadata names `LaneSim-v0`).

Label file (JSON Lines): one object per SOURCE frame (blank lines are ignored), e.g.
`{"move": [0.62, 0.40], "keys": {"attack": true, "q": false}, "gold": 521, "health": 480.5}`:
- `move`: screen position [x, y] in [0, 1] (0 = left/top edge) of a move click made on this
  frame, or null when there was no click (the last click's target is held, as in League);
- `keys`: the keys pressed on this frame, either an object of booleans over "attack", "q",
  "w", "e", "r" (missing = not pressed) or a list of the pressed names, e.g. ["attack", "q"];
- `gold`: the player's total gold; `health`: the player's health (0 while dead).

Actions. Step t's action (which leads from output frame t to t + 1, stored as Minari's
`actions[t]`) covers source frames j(t) .. j(t + 1) - 1 (none when upsampling repeats a
frame): a key counts as pressed if it was pressed on any of them; the move is that span's
last click. A click at image point (u, v) in [0, 1] (after the resize: letterboxing shifts and
scales it) becomes LaneSim's bins `round(20 u), round(20 v)`, exactly inverting LaneSim's map
from bin i to screen coordinate i / 20 with the champion at the centre bin 10. No click is
bin (10, 10), which LaneSim reads as "no new click, keep walking to the held target" (so a
click exactly on the champion also reads as no click).

Rewards use LaneSim's formula and its default constants: `gold_scale * gold gained -
death_penalty * deaths`, gold gained = max(0, gold[j(t + 1)] - gold[j(t)]) (spending is not a
penalty), a death = health dropping from above 0 to 0 or below on a source frame in
j(t) + 1 .. j(t + 1). Episodes never terminate; the last step is truncated.

Without a label file every step is unlabeled: `infos["labeled"]` is False everywhere, every
action is the "no click, no keys" action [10, 10, 0, 0, 0, 0, 0] and every reward is 0
(SequenceView then reports `labeled` False so trainers use a no-action embedding). With
labels, `infos["labeled"]` is False at t = 0 (no action leads to the first frame) and True after;
infos also hold `source_frame`, and with labels `gold` and `health`, per step.

Bad input (unreadable or truncated video, malformed JSON lines, out-of-range coordinates, a
label count that differs from the source frame count) raises ValueError or FileNotFoundError
before anything is written, and the dataset is written atomically, so no partial dataset is left.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RESIZE_MODES = ("squash", "letterbox")
KEY_NAMES = ("attack", "q", "w", "e", "r")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class FrameLabel:
    """One source frame's label: click position (or None), keys pressed, gold and health."""

    move: tuple[float, float] | None
    keys: tuple[bool, bool, bool, bool, bool]  # attack, q, w, e, r
    gold: float
    health: float


def _number(value: object, name: str, where: str) -> float:
    try:  # an integer too large for a float (10**400) overflows here
        finite = not isinstance(value, bool) and isinstance(value, (int, float))
        finite = finite and math.isfinite(value)
    except OverflowError:
        finite = False
    if not finite:
        raise ValueError(f"{where}: {name!r} must be a finite number, got {value!r}")
    return value


def _positive_finite(x: float) -> bool:
    return math.isfinite(x) and x > 0


def parse_label(obj: object, where: str) -> FrameLabel:
    """Validate one decoded JSON label; `where` (file and line) prefixes every error."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, got {obj!r}")
    unknown = set(obj) - {"move", "keys", "gold", "health"}
    if unknown:
        raise ValueError(f"{where}: unknown fields {sorted(unknown)}; use move, keys, gold, health")
    move = obj.get("move")
    if move is not None:
        if not isinstance(move, list) or len(move) != 2:
            raise ValueError(f"{where}: 'move' must be [x, y] or null, got {move!r}")
        x, y = (_number(v, "move", where) for v in move)
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"{where}: 'move' {move} out of range: x and y must be in [0, 1]")
        move = (float(x), float(y))
    keys = obj.get("keys", {})
    if isinstance(keys, list):
        bad = [k for k in keys if not isinstance(k, str) or k not in KEY_NAMES]
        pressed = {k for k in keys if isinstance(k, str)}
    elif isinstance(keys, dict):
        bad = [k for k in keys if k not in KEY_NAMES]
        bad += [f"{k}={v!r}" for k, v in keys.items() if not isinstance(v, bool)]
        pressed = {k for k, v in keys.items() if v is True}
    else:
        raise ValueError(f"{where}: 'keys' must be an object of booleans or a list of key names")
    if bad:
        raise ValueError(f"{where}: bad keys {bad}; keys are {list(KEY_NAMES)} with boolean values")
    for field in ("gold", "health"):
        if field not in obj:
            raise ValueError(f"{where}: missing {field!r}")
    return FrameLabel(
        move,
        tuple(k in pressed for k in KEY_NAMES),
        _number(obj["gold"], "gold", where),
        _number(obj["health"], "health", where),
    )


def read_labels(path: str | os.PathLike) -> list[FrameLabel]:
    """Parse a JSON Lines label file; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file {path} not found")
    labels = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: malformed JSON ({err.msg})") from None
            labels.append(parse_label(obj, where))
    if not labels:
        raise ValueError(f"label file {path} holds no labels")
    return labels


def source_index(t: int, source_fps: float, fps: float) -> int:
    """The source frame nearest in time to output step t."""
    return math.floor(t * source_fps / fps + 0.5)


def letterbox_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(x0, y0, w, h): where a width x height frame lands in a letterboxed size x size image."""
    scale = size / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    return (size - w) // 2, (size - h) // 2, w, h


def fit_frame(frame: np.ndarray, size: int, mode: str) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8, squashed or letterboxed (bilinear)."""
    from PIL import Image

    height, width = frame.shape[:2]
    if (height, width) == (size, size):
        return frame
    if mode == "squash":
        return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.BILINEAR))
    x0, y0, w, h = letterbox_box(width, height, size)
    out = np.zeros((size, size, 3), np.uint8)
    resized = Image.fromarray(frame).resize((w, h), Image.Resampling.BILINEAR)
    out[y0 : y0 + h, x0 : x0 + w] = np.asarray(resized)
    return out


def screen_to_image(
    x: float, y: float, width: int, height: int, size: int, mode: str
) -> tuple[float, float]:
    """A source-screen point in [0, 1]^2 as a point of the output image in [0, 1]^2."""
    if mode == "squash":
        return x, y
    x0, y0, w, h = letterbox_box(width, height, size)
    return (x0 + x * w) / size, (y0 + y * h) / size


def _natural_key(path: Path) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.name)]


def read_frames(
    path: str | os.PathLike, source_fps: float | None = None
) -> tuple[Iterator[np.ndarray], float, int | None]:
    """(frames, source fps, expected frame count or None) of a video file or a frame folder."""
    path = Path(path)
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key
        )
        if not files:
            raise ValueError(f"folder {path} holds no {'/'.join(IMAGE_SUFFIXES)} frames")
        return _folder_frames(files), source_fps, len(files)
    if not path.is_file():
        raise FileNotFoundError(f"no video file or frame folder at {path}")
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as err:
        reader.close()
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot read video {path}: unreadable or truncated ({first})") from None
    fps = source_fps or meta.get("fps")
    if not fps or not _positive_finite(fps):
        reader.close()
        raise ValueError(f"video {path} has no frame rate in its metadata; pass --source-fps")
    duration = meta.get("duration") or 0.0
    expected = round(duration * meta["fps"]) if meta.get("fps") else None
    header = _avi_total_frames(path)  # ffmpeg estimates an AVI's length from what is left
    if header is not None:
        expected = max(expected or 0, header)
    return _video_frames(reader, path, meta["size"]), float(fps), expected


def _avi_total_frames(path: Path) -> int | None:
    """dwTotalFrames of an AVI's main header ('avih'), or None for other files."""
    with open(path, "rb") as f:
        head = f.read(4096)
    at = head.find(b"avih")
    if head[:4] != b"RIFF" or head[8:12] != b"AVI " or at < 0 or len(head) < at + 28:
        return None
    return int.from_bytes(head[at + 24 : at + 28], "little")


def _video_frames(reader, path: Path, size: tuple[int, int]) -> Iterator[np.ndarray]:
    width, height = size
    try:
        for raw in reader:
            yield np.frombuffer(raw, np.uint8).reshape(height, width, 3)
    except (OSError, RuntimeError, ValueError) as err:
        raise ValueError(f"cannot decode video {path} (truncated or corrupt?): {err}") from None
    finally:
        reader.close()


def _folder_frames(files: list[Path]) -> Iterator[np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    shape = None
    for file in files:
        try:
            with Image.open(file) as image:
                if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit or float
                    raise ValueError(
                        f"frame {file} has {image.mode!r} pixels; save 8-bit frames "
                        "(RGB, RGBA, L or P)"
                    )
                frame = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as err:
            raise ValueError(f"cannot read frame {file}: {err}") from None
        if shape is not None and frame.shape != shape:
            raise ValueError(f"frame {file} is {frame.shape[:2]}, earlier frames {shape[:2]}")
        shape = frame.shape
        yield frame


def lane_reward_constants() -> tuple[float, float]:
    """LaneSim's default (gold_scale, death_penalty)."""
    from envs.lane import DEATH_PENALTY, GOLD_SCALE

    return GOLD_SCALE, DEATH_PENALTY


def _deaths(health: np.ndarray) -> np.ndarray:
    """(n,) per source frame: 1 where health drops from above 0 to 0 or below, else 0."""
    dead = health <= 0
    return np.r_[0, (dead[1:] & ~dead[:-1]).astype(np.int64)]


def label_steps(
    labels: list[FrameLabel],
    src: np.ndarray,
    to_image: Callable[[float, float], tuple[float, float]] | None,
    gold_scale: float,
    death_penalty: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(actions (T - 1, 7) int64, rewards (T - 1,) float64) for output steps at source frames `src`.

    `to_image(x, y)` maps a source-screen click to output-image coordinates in [0, 1].
    """
    from envs.lane import CENTER_BIN, MOVE_BINS

    last = MOVE_BINS - 1
    keys = np.array([label.keys for label in labels], bool)  # (n, 5)
    gold = np.array([label.gold for label in labels], np.float64)
    deaths = np.cumsum(_deaths(np.array([label.health for label in labels], np.float64)))
    actions = np.zeros((len(src) - 1, 7), np.int64)
    rewards = np.zeros(len(src) - 1, np.float64)
    for t, (a, b) in enumerate(zip(src[:-1], src[1:], strict=True)):
        actions[t, :2] = CENTER_BIN
        clicks = [labels[j].move for j in range(a, b) if labels[j].move is not None]
        if clicks:
            u, v = to_image(*clicks[-1])
            actions[t, :2] = round(last * u), round(last * v)
        actions[t, 2:] = keys[a:b].any(axis=0)
        gained = max(0.0, gold[b] - gold[a])
        rewards[t] = gold_scale * gained - death_penalty * (deaths[b] - deaths[a])
    return actions, rewards


def _decode(
    path: str | os.PathLike,
    source_fps: float | None,
    fps: float,
    size: int,
    resize: str,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, int, tuple[int, int]]:
    """Resampled, resized frames (T, size, size, 3), their source indices (T,), the number of
    source frames and the source (height, width)."""
    from tqdm import tqdm

    frames, src_fps, expected = read_frames(path, source_fps)
    src_fps = src_fps or fps
    observations, src, n, shape = [], [], 0, (0, 0)
    bar = tqdm(frames, total=expected, desc=f"ingest {Path(path).name}", disable=not progress)
    for j, frame in enumerate(bar):
        shape = frame.shape[:2]
        while source_index(len(src), src_fps, fps) == j:
            src.append(j)
            observations.append(fit_frame(frame, size, resize))
        n = j + 1
    if expected is not None and n < expected - max(2, 0.02 * expected):
        raise ValueError(
            f"video {path} looks truncated: its header promises about {expected} frames, "
            f"only {n} could be decoded"
        )
    if len(src) < 2:
        raise ValueError(f"{path} gives {len(src)} frame(s) at {fps} fps; need at least 2")
    return np.stack(observations), np.asarray(src), n, shape


def ingest_video(
    path: str | os.PathLike,
    dataset_id: str,
    labels: str | os.PathLike | None = None,
    fps: float = 20.0,
    size: int = 64,
    resize: str = "squash",
    source_fps: float | None = None,
    data_dir: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Write the video (or frame folder) at `path` as a one-episode dataset; returns its folder."""
    from gymnasium import spaces
    from minari.data_collector import EpisodeBuffer

    from data_collection.datasets import check_dataset_id, dataset_dir, write_dataset
    from envs.lane import CENTER_BIN, NVEC

    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    if not _positive_finite(fps) or (source_fps is not None and not _positive_finite(source_fps)):
        raise ValueError(
            f"fps and source fps must be positive and finite, got {fps} and {source_fps}"
        )
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    check_dataset_id(dataset_id)
    if dataset_dir(dataset_id, data_dir).exists() and not force:
        raise FileExistsError(
            f"dataset {dataset_id!r} already exists in {dataset_dir(dataset_id, data_dir)}; "
            "pass --force to replace it"
        )
    frame_labels = read_labels(labels) if labels is not None else None
    observations, src, n, (height, width) = _decode(path, source_fps, fps, size, resize, progress)
    steps = len(src) - 1
    infos = {"labeled": np.zeros(len(src), bool), "source_frame": src}
    if frame_labels is None:
        actions = np.zeros((steps, len(NVEC)), np.int64)
        actions[:, :2] = CENTER_BIN
        rewards = np.zeros(steps)
    else:
        if len(frame_labels) != n:
            raise ValueError(
                f"label file {labels} has {len(frame_labels)} labels but {path} has {n} frames; "
                "give one JSON line per source frame"
            )
        actions, rewards = label_steps(
            frame_labels,
            src,
            lambda x, y: screen_to_image(x, y, width, height, size, resize),
            *lane_reward_constants(),
        )
        infos["labeled"][1:] = True
        infos["gold"] = np.array([frame_labels[j].gold for j in src])
        infos["health"] = np.array([frame_labels[j].health for j in src])
    episode = EpisodeBuffer(
        observations=observations,
        actions=actions,
        rewards=rewards,
        terminations=np.zeros(steps, bool),
        truncations=np.arange(steps) == steps - 1,
        infos=infos,
    )
    return write_dataset(
        dataset_id,
        [episode],
        observation_space=spaces.Box(0, 255, (size, size, 3), np.uint8),
        action_space=spaces.MultiDiscrete(NVEC),
        env_id="LaneSim-v0",
        data_dir=data_dir,
        force=force,
        algorithm_name="dreamgym-ingest-video",
        description=f"{Path(path).name} at {fps} fps, {size}x{size} ({resize}), "
        f"{'labeled' if frame_labels else 'unlabeled'}",
    )
