"""Moving MNIST as a Gymnasium env: steer one digit (the ego) to chase the other.

Geometry and motion follow the standard Moving MNIST generator (Srivastava et al. 2015): a 64x64
canvas, two 28x28 digits composited with a pixelwise max, top-left corners in [0, 64 - 28] on
each axis; a digit that would leave the canvas is clamped to the wall and its velocity on that
axis flips (`bounce`). Positions and velocities are (x, y) = (column, row) in pixels, y down.

Also here: `generate_sequences` (classic two-digit sequences with the ego displacement as the
action, produced by this env's own motion) and `load_mnist_test_seq` (the standard test file).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.mnist_digits import DIGIT_SIZE, load_digits

CANVAS = 64
LIMIT = float(CANVAS - DIGIT_SIZE)  # top-left corners lie in [0, LIMIT] on each axis
IMAGE_SIZES = (64, 32, 16)
MNIST_TEST_SEQ_URL = "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy"


def bounce(position: np.ndarray, velocity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One standard-generator step: move, clamp to [0, LIMIT], flip each clamped axis's velocity."""
    moved = position + velocity
    hit = (moved < 0.0) | (moved > LIMIT)
    return np.clip(moved, 0.0, LIMIT), np.where(hit, -velocity, velocity)


def random_velocity(rng: np.random.Generator, speed: tuple[float, float]) -> np.ndarray:
    """A velocity (2,) with uniform direction and speed uniform in [speed[0], speed[1]] px/frame."""
    angle = rng.uniform(0.0, 2.0 * np.pi)
    return rng.uniform(*speed) * np.array([np.cos(angle), np.sin(angle)])


def render_digits(digits: Sequence[np.ndarray], positions: Sequence[np.ndarray]) -> np.ndarray:
    """(64, 64) uint8 canvas: each 28x28 digit at its rounded top-left corner, max-composited."""
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    for digit, (x, y) in zip(digits, positions, strict=True):
        col, row = int(round(x)), int(round(y))
        patch = canvas[row : row + DIGIT_SIZE, col : col + DIGIT_SIZE]
        np.maximum(patch, digit, out=patch)
    return canvas


class MovingMNISTEnv(gym.Env):
    """Two MNIST digits on a 64x64 canvas; the action is the ego digit's velocity.

    - Observation: `Box(0, 255, (image_size, image_size, 1), uint8)`; `image_size` 64 (default),
      32 or 16 averages 2x2 or 4x4 pixel blocks of the 64x64 canvas.
    - Action: `Box(-1, 1, (2,), float32)`, the ego velocity (x, y) in units of `max_speed`
      pixels per frame. As with any Gymnasium Box, out-of-range values are clipped to [-1, 1];
      a NaN/inf entry or a shape other than (2,) raises ValueError. At a wall the ego digit is
      clamped (it has no velocity of its own to flip).
    - The other digit starts with a random direction and a speed uniform in `target_speed`
      px/frame and bounces off the walls like the standard generator.
    - Reward (chase), after each step: `exp(-d / reward_scale)` with d the distance in pixels
      between the two digit centres; 1 when they coincide, about 0.03 at the largest possible
      distance (51 px) with the default scale of 14 px (half a digit). Never terminates;
      truncates after `episode_length` steps.
    - info: `ego_position`, `other_position` (top-left corners, (x, y) float64) and `distance`.
    - Digits come from the `digits` split ('train' or 'test', disjoint; see envs.mnist_digits).
      The ego digit, the other digit, both start positions and the other velocity are drawn
      from the seeded `np_random`, so the same seed and actions give the same frames and rewards.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        digits: str = "train",
        max_speed: float = 3.0,
        target_speed: tuple[float, float] = (1.0, 2.0),
        episode_length: int = 50,
        reward_scale: float = 14.0,
        image_size: int = 64,
        render_mode: str | None = None,
    ) -> None:
        if not max_speed > 0:
            raise ValueError(f"max_speed must be > 0 pixels/frame, got {max_speed}")
        if len(target_speed) != 2 or not 0 <= target_speed[0] <= target_speed[1]:
            raise ValueError(
                f"target_speed must be (low, high) with 0 <= low <= high, got {target_speed}"
            )
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        if not reward_scale > 0:
            raise ValueError(f"reward_scale must be > 0 pixels, got {reward_scale}")
        if image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.digit_images, self.digit_labels = load_digits(digits)
        self.digits = digits
        self.max_speed = float(max_speed)
        self.target_speed = (float(target_speed[0]), float(target_speed[1]))
        self.episode_length = int(episode_length)
        self.reward_scale = float(reward_scale)
        self.image_size = int(image_size)
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, (image_size, image_size, 1), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.ego_position = np.zeros(2)
        self.other_position = np.zeros(2)
        self.other_velocity = np.zeros(2)
        self.labels = np.zeros(2, dtype=np.int64)  # (ego, other) digit classes
        self.steps = 0
        self._pair: tuple[np.ndarray, np.ndarray] | None = None  # (ego, other) 28x28 images

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        rng = self.np_random
        picks = rng.integers(len(self.digit_images), size=2)
        self._pair = (self.digit_images[picks[0]], self.digit_images[picks[1]])
        self.labels = self.digit_labels[picks].copy()
        self.ego_position = rng.uniform(0.0, LIMIT, size=2)
        self.other_position = rng.uniform(0.0, LIMIT, size=2)
        self.other_velocity = random_velocity(rng, self.target_speed)
        self.steps = 0
        return self._observe(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._pair is None:
            raise RuntimeError("MovingMNISTEnv.step() called before reset()")
        velocity = self._check_action(action) * self.max_speed
        self.ego_position, _ = bounce(self.ego_position, velocity)
        self.other_position, self.other_velocity = bounce(self.other_position, self.other_velocity)
        self.steps += 1
        reward = float(np.exp(-self.distance() / self.reward_scale))
        truncated = self.steps >= self.episode_length
        return self._observe(), reward, False, truncated, self._info()

    def render(self) -> np.ndarray | None:
        """RGB (64, 64, 3) uint8 frame of the full canvas when render_mode='rgb_array'."""
        if self.render_mode != "rgb_array" or self._pair is None:
            return None
        return np.repeat(self._canvas()[..., None], 3, axis=-1)

    def distance(self) -> float:
        """Distance in pixels between the two digit centres."""
        return float(np.linalg.norm(self.ego_position - self.other_position))

    @staticmethod
    def _check_action(action: Any) -> np.ndarray:
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"action must be 2 numbers (ego velocity x, y), got {action!r}") from e
        if a.shape != (2,):
            raise ValueError(
                f"action must have shape (2,) (ego velocity x, y), got shape {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite, got {a.tolist()}")
        return np.clip(a, -1.0, 1.0)

    def _canvas(self) -> np.ndarray:
        assert self._pair is not None
        return render_digits(self._pair, (self.ego_position, self.other_position))

    def _observe(self) -> np.ndarray:
        canvas = self._canvas()
        if self.image_size != CANVAS:
            n, f = self.image_size, CANVAS // self.image_size
            blocks = canvas.reshape(n, f, n, f).astype(np.float32)
            canvas = np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)
        return canvas[..., None]

    def _info(self) -> dict[str, Any]:
        return {
            "ego_position": self.ego_position.copy(),
            "other_position": self.other_position.copy(),
            "distance": self.distance(),
        }


def sequence_seeds(num: int, seed: int = 0) -> list[int]:
    """The env reset seed of each sequence of `generate_sequences(num, seed=seed)`.

    Sequence i is `MovingMNISTEnv.reset(seed=sequence_seeds(num, seed)[i])` followed by its
    actions, so it can be replayed in the env. The list for fewer sequences is a prefix.
    """
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(num)]


def generate_sequences(
    num: int,
    length: int = 20,
    digits: str = "test",
    seed: int = 0,
    max_speed: float = 3.0,
    speed: tuple[float, float] = (1.0, 2.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Classic two-digit Moving MNIST sequences with actions, produced by `MovingMNISTEnv`.

    Both digits move with a constant velocity (uniform direction, speed uniform in `speed`
    px/frame) and bounce off the walls. The action at step t is the ego digit's realised
    displacement from frame t to t+1 divided by `max_speed` (a bounce shortens it), so feeding
    the actions to the env reproduces the frames exactly. The defaults match the env's; the
    classic generator's 3.6 px/frame is `max_speed=3.6, speed=(3.6, 3.6)`. Returns frames uint8
    (num, length, 64, 64, 1) and actions float32 (num, length - 1, 2) in [-1, 1].
    """
    if num < 1 or length < 2:
        raise ValueError(f"need num >= 1 and length >= 2, got num={num}, length={length}")
    if speed[1] > max_speed:
        raise ValueError(
            f"speed range {speed} exceeds max_speed={max_speed}: the ego displacement would not "
            "fit an action in [-1, 1]; lower the speed or raise max_speed"
        )
    env = MovingMNISTEnv(
        digits=digits, max_speed=max_speed, target_speed=speed, episode_length=length - 1
    )
    frames = np.empty((num, length, CANVAS, CANVAS, 1), dtype=np.uint8)
    actions = np.empty((num, length - 1, 2), dtype=np.float32)
    for i, reset_seed in enumerate(sequence_seeds(num, seed)):
        frames[i, 0], _ = env.reset(seed=reset_seed)
        velocity = random_velocity(env.np_random, speed)
        for t in range(length - 1):
            target, velocity = bounce(env.ego_position, velocity)
            actions[i, t] = np.clip((target - env.ego_position) / env.max_speed, -1.0, 1.0)
            frames[i, t + 1] = env.step(actions[i, t])[0]
    return frames, actions


def load_mnist_test_seq(path: str | os.PathLike, num: int | None = None) -> np.ndarray:
    """The standard `mnist_test_seq.npy` (stored (20, N, 64, 64) uint8) as (N, 20, 64, 64, 1);
    with `num`, only its first `num` sequences are read (the file is memory-mapped)."""
    if num is not None and num < 1:
        raise ValueError(f"num must be >= 1 sequences (or None: all), got {num}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: download the standard Moving MNIST test set from "
            f"{MNIST_TEST_SEQ_URL} and pass its path"
        )
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path} is not a readable .npy array file: {e}") from e
    if data.ndim != 4 or data.shape[0] != 20 or data.shape[2:] != (CANVAS, CANVAS):
        raise ValueError(
            f"{path} has shape {data.shape}; mnist_test_seq.npy is (20, N, 64, 64) "
            "(frames first, then sequences)"
        )
    if data.dtype != np.uint8:
        raise ValueError(f"{path} has dtype {data.dtype}; mnist_test_seq.npy is uint8")
    return np.ascontiguousarray(np.transpose(data[:, :num], (1, 0, 2, 3)))[..., None]
