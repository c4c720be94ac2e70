"""Dream envs: a trained world model served as an ordinary Gymnasium env.

A dream env loads a world-model bundle (`world_models.bundle`) of one of two kinds:

- Dreamer: a tokenizer, an action-conditioned dynamics model with reward and continue heads,
  and real start contexts. `reset` picks a start context (seeded), reads it into the dynamics'
  KV cache and returns its last real frame; `step` imagines the next frame from the action (K
  shortcut steps), with the reward head's reward, `terminated` from the continue head (below a
  threshold, or a Bernoulli sample) and `truncated` at the bundle's horizon.
  `obs_mode="latents"` serves the tokenizer's latents (N, D) in [-1, 1] instead of pixels.
- masked video (`models: {"masked_video": ...}`, from `dreamgym train-dynamics --kind
  masked-video`): the same, with K MaskGIT decoding steps per frame
  (`world_models.masked_video_world_model`). It has no reward or continue heads: every reward
  is 0, the continue probability is 1 and episodes end only at the horizon.
  `obs_mode="latents"` serves each frame's tokens (N, P): uint8 grey levels in [0, levels).

Observation and action spaces are exactly the bundle's, i.e. those of the real env it models.

`DreamCore` is the model side shared with `envs.dream_vector.DreamVectorEnv`: batched start and
step over rows, action checks and observation conversion. Randomness: every rollout (row) has its
own `np.random.Generator` (start context, sampled termination) and its own `torch.Generator`
(diffusion noise), reseeded from the former on every reset, so equal seeds and actions give
identical rollouts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from envs.actions import check_actions, whole_number
from world_models.action_encoder import spec_to_space
from world_models.bundle import HOW_TO_FIX, Bundle, BundleError, load_bundle
from world_models.masked_video import MaskedVideoModel
from world_models.masked_video_sampler import SamplingSettings
from world_models.masked_video_world_model import MaskedVideoWorldModel
from world_models.model_io import model_spec
from world_models.world_model import BaseWorldModel, WorldModel

DREAMER, MASKED_VIDEO = "dreamer", "masked-video"  # bundle kinds
OBS_MODES = ("pixels", "latents")
TERMINATIONS = ("threshold", "sample")
SEED_HIGH = 2**63 - 1


def load_dream_bundle(bundle: str | os.PathLike | None, device: torch.device) -> Bundle:
    """`load_bundle` plus checks that its models fit each other and the bundle's spaces; every
    failure is a `BundleError` naming the file and saying how to get a good bundle."""
    if bundle is None:
        raise ValueError(
            "a dream env needs a world-model bundle: gym.make('Dream-v0', bundle='path/to/bundle')"
            f"; {HOW_TO_FIX}"
        )
    path = Path(bundle)
    if not path.is_dir():
        raise BundleError(
            f"world-model bundle {path} not found: pass bundle=PATH to a bundle folder, or put "
            f"one there; {HOW_TO_FIX}"
        )
    try:
        loaded = load_bundle(path, device)
    except BundleError:
        raise
    except (ValueError, KeyError, TypeError, ImportError) as err:
        raise BundleError(f"cannot load world-model bundle {path}: {err}; {HOW_TO_FIX}") from err
    config_file = path / "config.json"
    if bundle_kind(loaded) == MASKED_VIDEO:
        _check_masked_video(config_file, loaded)
    else:
        _check_dreamer(config_file, loaded)
    return loaded


def bundle_kind(bundle: Bundle) -> str:
    """DREAMER (models "tokenizer" and "dynamics") or MASKED_VIDEO (model "masked_video")."""
    config_file = bundle.path / "config.json"
    names = set(bundle.models)
    dreamer = {"tokenizer", "dynamics"}
    if "masked_video" in names and names & dreamer:
        raise BundleError(
            f"{config_file} holds both a masked video model and {sorted(names & dreamer)}; a "
            f"bundle serves one world model; {HOW_TO_FIX}"
        )
    if "masked_video" in names:
        return MASKED_VIDEO
    if dreamer - names:
        raise BundleError(
            f"{config_file} lacks the model(s) {sorted(dreamer - names)} (a bundle holds "
            f"either 'tokenizer' and 'dynamics', or 'masked_video'); {HOW_TO_FIX}"
        )
    return DREAMER


def _check_actions(config_file: Path, spec: dict[str, Any], bundle: Bundle) -> None:
    """The model's actions are the bundle's, and so are the start contexts' labeled actions."""
    trained_for = spec_to_space(spec)
    if trained_for != bundle.action_space:
        raise BundleError(
            f"{config_file}: the model was trained for actions {trained_for} but the bundle's "
            f"action space is {bundle.action_space}; {HOW_TO_FIX}"
        )
    contexts = bundle.contexts
    for action in contexts["action"][contexts["labeled"].bool()].cpu().numpy():
        try:
            check_actions(action, bundle.action_space, ())
        except ValueError as err:
            raise BundleError(
                f"{bundle.path / 'contexts.safetensors'}: a start context's {err}; {HOW_TO_FIX}"
            ) from err


def _check_masked_video(config_file: Path, loaded: Bundle) -> None:
    model = loaded.models["masked_video"]
    if not isinstance(model, MaskedVideoModel):
        raise BundleError(
            f"{config_file}: model 'masked_video' is of kind {model_spec(model)['kind']!r}, not "
            f"'masked-video'; {HOW_TO_FIX}"
        )
    _check_actions(config_file, model.config.action_spec, loaded)
    c, shape = model.config, loaded.observation_space.shape
    if len(shape) != 3 or shape[0] != shape[1] or shape[2] != c.channels:
        raise BundleError(
            f"{config_file}: the observation space {loaded.observation_space} is not square "
            f"frames of {c.channels} channel(s), as the masked video model makes; {HOW_TO_FIX}"
        )
    try:
        MaskedVideoWorldModel(model, frame_size=shape[0])
    except ValueError as err:
        raise BundleError(f"{config_file}: {err}; {HOW_TO_FIX}") from err


def _check_dreamer(config_file: Path, loaded: Bundle) -> None:
    tokenizer, dynamics = loaded.models["tokenizer"], loaded.models["dynamics"]
    cfg = dynamics.config
    _check_actions(config_file, cfg.action_spec, loaded)
    if (tokenizer.num_latents, tokenizer.latent_dim) != (cfg.num_latents, cfg.latent_dim):
        raise BundleError(
            f"{config_file}: tokenizer latents ({tokenizer.num_latents}, {tokenizer.latent_dim}) "
            f"differ from the dynamics' ({cfg.num_latents}, {cfg.latent_dim}); {HOW_TO_FIX}"
        )
    obs = loaded.contexts["obs"][:1, -1:].to(next(tokenizer.parameters()).device)
    with torch.no_grad():
        frame = tokenizer.decode(tokenizer.encode(obs))
    if frame.shape != obs.shape:
        raise BundleError(
            f"{config_file}: the tokenizer decodes frames to {tuple(frame.shape[2:])}, but the "
            f"observation space is {loaded.observation_space}; {HOW_TO_FIX}"
        )


def dream_world_model(bundle: Bundle, num_steps: int | None = None) -> BaseWorldModel:
    """The world model of a checked bundle, decoding each frame in `num_steps` steps (default:
    the bundle's): shortcut steps (a power of two up to k_max) or MaskGIT steps (>= 1); with
    the bundle's static-pixel copy (`sampling.copy_threshold`, none when absent)."""
    sampling = bundle.sampling
    if num_steps is not None:
        num_steps = whole_number(num_steps, "num_steps")
    if bundle_kind(bundle) == MASKED_VIDEO:
        model = bundle.models["masked_video"]
        try:
            overrides = sampling if num_steps is None else {**sampling, "num_steps": num_steps}
            settings = SamplingSettings.from_model(model, **overrides)
        except (TypeError, ValueError) as err:
            raise BundleError(
                f"{bundle.path / 'config.json'}: bad sampling settings {sampling} ({err}); "
                f"{HOW_TO_FIX}"
            ) from err
        return MaskedVideoWorldModel(model, bundle.observation_space.shape[0], settings)
    config = bundle.models["dynamics"].config
    steps = num_steps
    if steps is None:
        try:
            steps = whole_number(sampling.get("num_steps", config.num_sampling_steps), "num_steps")
        except ValueError as err:
            where = bundle.path / "config.json"
            raise BundleError(f"{where}: sampling {err}; {HOW_TO_FIX}") from err
    k_max = config.k_max
    if steps > k_max or steps & (steps - 1):
        raise ValueError(
            f"num_steps must be a power of two between 1 and k_max={k_max}, got {steps}"
        )
    copy_threshold = sampling.get("copy_threshold")
    try:
        return WorldModel(
            bundle.models["tokenizer"], bundle.models["dynamics"], steps, copy_threshold
        )
    except ValueError as err:
        raise BundleError(f"{bundle.path / 'config.json'}: sampling {err}; {HOW_TO_FIX}") from err


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """Float frames in [0, 1] -> uint8 numpy array of the same shape."""
    return frames.mul(255).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()


class DreamCore:
    """A loaded bundle with batched, per-row start and step (rows = rollouts)."""

    def __init__(
        self,
        bundle: str | os.PathLike | None,
        device: str | torch.device = "cpu",
        obs_mode: str = "pixels",
        termination: str = "threshold",
        continue_threshold: float = 0.5,
        horizon: int | None = None,
        num_steps: int | None = None,
        compile: bool = False,
        trace: bool = True,
    ) -> None:
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if termination not in TERMINATIONS:
            raise ValueError(f"termination must be one of {TERMINATIONS}, got {termination!r}")
        if not 0.0 <= continue_threshold <= 1.0:
            raise ValueError(f"continue_threshold must be in [0, 1], got {continue_threshold}")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(
                f"device={device!r} is not a torch device, e.g. 'cpu' or 'cuda'"
            ) from err
        if self.device.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device={device!r}: a dream env runs on 'cpu', 'cuda' or 'mps'")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available; use device='cpu'")
        self.bundle = load_dream_bundle(bundle, self.device)
        self.contexts = self.bundle.contexts
        self.world_model = dream_world_model(self.bundle, num_steps)
        if compile:
            self.world_model.compile_for_speed()
        elif trace:
            self.world_model.trace_for_speed()
        if horizon is not None:
            self.horizon = whole_number(horizon, "horizon")
        else:
            self.horizon = self._bundle_number("horizon", None)
        self.obs_mode = obs_mode
        self.termination = termination
        self.continue_threshold = continue_threshold
        self.render_fps = self._bundle_number("render_fps", 20)
        self.action_space = self.bundle.action_space
        # frames are uint8 (load_bundle checks the start frames are); bundle specs keep no dtype
        self.pixel_space = spaces.Box(0, 255, self.bundle.observation_space.shape, np.uint8)
        pixels = obs_mode == "pixels"
        self.observation_space = self.pixel_space if pixels else self.world_model.latent_space

    def _bundle_number(self, key: str, default: int | None) -> int:
        """A whole-number setting of the bundle's config.json (`default` where it has none)."""
        config_file = self.bundle.path / "config.json"
        if key not in self.bundle.config and default is None:
            raise BundleError(f"{config_file} lacks '{key}'; {HOW_TO_FIX}")
        try:
            return whole_number(self.bundle.config.get(key, default), key)
        except ValueError as err:
            raise BundleError(f"{config_file}: {err}; {HOW_TO_FIX}") from err

    def new_generator(self) -> torch.Generator:
        return torch.Generator(device=self.device)

    def draw_start(self, rng: np.random.Generator, generator: torch.Generator) -> int:
        """Pick a start context for one row and reseed its noise generator, both from `rng`."""
        index = int(rng.integers(len(self.contexts["obs"])))
        generator.manual_seed(int(rng.integers(SEED_HIGH)))
        return index

    def context(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The bundle's start contexts `indices`: obs (B, T0, H, W, C), action, labeled."""
        rows = torch.as_tensor(indices)
        return tuple(self.contexts[k][rows] for k in ("obs", "action", "labeled"))

    def real_context(
        self, frames: Any, actions: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A context of one rollout from real frames (T0, H, W, C) or (H, W, C) uint8 and,
        optionally, the actions (T0, ...) that led to them (the first one is never used)."""
        obs = np.array(frames)  # a copy: the caller's array stays theirs
        obs = obs[None] if obs.shape == self.pixel_space.shape else obs
        bad_shape = obs.ndim != 4 or obs.shape[1:] != self.pixel_space.shape or not len(obs)
        if obs.dtype != np.uint8 or bad_shape:
            raise ValueError(
                f"start frames must be uint8 of shape (T0, *{self.pixel_space.shape}) with "
                f"T0 >= 1, got "
                f"{obs.dtype} {obs.shape}"
            )
        length = len(obs)
        labeled = torch.ones(1, length, dtype=torch.bool)
        labeled[:, 0] = False
        if actions is None:  # unknown: unlabeled, with an in-space placeholder
            space = self.action_space
            null = (
                np.clip(np.zeros(space.shape, np.float32), space.low, space.high)
                if isinstance(space, spaces.Box)
                else np.asarray(space.start, np.int64)
            )
            actions = np.broadcast_to(null, (length, *space.shape))
            labeled[:] = False
        action = torch.as_tensor(self.check_actions(actions, (length,)))
        return torch.as_tensor(obs)[None], action[None], labeled

    @torch.no_grad()
    def start(
        self, obs: torch.Tensor, action: torch.Tensor, labeled: torch.Tensor, generator: Any
    ) -> tuple[Any, torch.Tensor, np.ndarray]:
        """Start rows from contexts obs (B, T0, H, W, C) uint8, action (B, T0, ...), labeled
        (B, T0): -> (model state, last latents (B, ...), last frames (B, H, W, C) uint8)."""
        obs = obs.to(self.device)
        state, latents = self.world_model.start(
            obs, action.to(self.device), labeled.to(self.device), generator
        )
        return state, latents[:, -1], obs[:, -1].cpu().numpy()

    @torch.no_grad()
    def step(
        self, state: Any, actions: np.ndarray, generator: Any
    ) -> tuple[Any, torch.Tensor, np.ndarray, np.ndarray]:
        """Imagine one frame per row: -> (state, latents (B, ...), reward (B,), continue (B,))."""
        action = torch.as_tensor(actions, device=self.device)
        state, latents, reward, cont = self.world_model.step(state, action, generator)
        return state, latents, reward.float().cpu().numpy(), cont.float().cpu().numpy()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, state: Any) -> np.ndarray:
        """Latents (B, ...) and the model state returned beside them -> uint8 frames (B, H, W,
        C)."""
        return to_uint8(self.world_model.decode(latents, state))

    def observe(self, latents: torch.Tensor, frames: np.ndarray | None) -> np.ndarray:
        """Observations (B, ...) in the chosen mode: the latents, or `frames`, the rows' pixels
        (given whenever obs_mode is "pixels")."""
        if self.obs_mode == "latents":
            return latents.float().cpu().numpy().astype(self.observation_space.dtype)
        return frames

    def terminated(self, cont: np.ndarray, rngs: list[np.random.Generator]) -> np.ndarray:
        """Episode ends from continue probabilities (B,): threshold, or one Bernoulli per row."""
        if self.termination == "threshold":
            return cont < self.continue_threshold
        return np.array([rng.random() >= c for rng, c in zip(rngs, cont, strict=True)])

    def check_actions(self, actions: Any, batch: tuple[int, ...]) -> np.ndarray:
        """Actions (*batch, *action shape) checked against the action space (Box ones clipped
        to its bounds, Gymnasium's convention); a clear ValueError if they do not fit."""
        return check_actions(actions, self.action_space, batch)

    def render_frames(self, frames: np.ndarray) -> np.ndarray:
        """(..., H, W, C) uint8 -> RGB (..., H, W, 3): a single channel is repeated."""
        return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


class DreamEnv(gym.Env):
    """One rollout of a world model as a `gym.Env` (see the module docstring).

    bundle: the bundle folder (required for `Dream-v0`; named ids default to a shipped one).
    device: torch device of the model. obs_mode: "pixels" (the real env's space) or "latents"
    (the world model's: Box (N, D) in [-1, 1] for a tokenizer, uint8 tokens (N, P) for a masked
    video model). termination: "threshold" (continue probability below `continue_threshold`)
    or "sample" (Bernoulli with the continue probability); a masked video model has no
    continue head (probability 1), so its episodes end only at the horizon, with reward 0.
    horizon: steps before truncation (default: the bundle's). num_steps: decoding steps K per
    frame (default: the bundle's): shortcut steps, fewer is faster and blurrier; or MaskGIT
    steps for a masked video model. compile: run the dynamics through `torch.compile`
    (Dreamer-style bundles): usually faster steps at one env on CPU (README, Speed), after a
    warm-up of about a minute spent compiling; needs a C++ compiler on CPU. trace: without
    compile, run the dynamics' per-frame passes through TorchScript traces (the default; the
    same numbers as eager, less per-op overhead); False runs them eagerly.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        bundle: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        obs_mode: str = "pixels",
        termination: str = "threshold",
        continue_threshold: float = 0.5,
        horizon: int | None = None,
        num_steps: int | None = None,
        render_mode: str | None = None,
        compile: bool = False,
        trace: bool = True,
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.core = DreamCore(
            bundle,
            device,
            obs_mode,
            termination,
            continue_threshold,
            horizon,
            num_steps,
            compile,
            trace,
        )
        self.metadata = {**self.metadata, "render_fps": self.core.render_fps}
        self.observation_space = self.core.observation_space
        self.action_space = self.core.action_space
        self.render_mode = render_mode
        self._generator = self.core.new_generator()
        self._state: Any = None
        self._latents: torch.Tensor | None = None
        self._frame: np.ndarray | None = None
        self._steps = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start from a bundle context picked with the env's rng, or from `options["context"]`
        (an index into the bundle's contexts), or from real frames `options["frames"]`
        ((T0, H, W, C) or (H, W, C) uint8) with optional `options["actions"]` (T0, ...)."""
        super().reset(seed=seed)
        options = options or {}
        unknown = sorted(set(options) - {"context", "frames", "actions"})
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {unknown}: a DreamEnv takes 'context', or 'frames' "
                "(and 'actions')"
            )
        index = self.core.draw_start(self.np_random, self._generator)
        if "frames" in options:
            context = self.core.real_context(options["frames"], options.get("actions"))
            index = -1
        else:
            index = whole_number(options.get("context", index), "options['context']", 0)
            if not 0 <= index < len(self.core.contexts["obs"]):
                raise ValueError(
                    f"options['context'] must be in [0, {len(self.core.contexts['obs'])}), "
                    f"got {index}"
                )
            context = self.core.context([index])
        self._state, self._latents, frames = self.core.start(*context, self._generator)
        self._frame = frames[0]
        self._steps = 0
        return self.core.observe(self._latents, frames)[0].copy(), {"context": index}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        actions = self.core.check_actions(action, ())[None]
        self._state, self._latents, reward, cont = self.core.step(
            self._state, actions, self._generator
        )
        pixels = self.core.obs_mode == "pixels"
        frames = self.core.decode(self._latents, self._state) if pixels else None
        self._frame = None if frames is None else frames[0]
        self._steps += 1
        terminated = bool(self.core.terminated(cont, [self.np_random])[0])
        truncated = self._steps >= self.core.horizon
        obs = self.core.observe(self._latents, frames)[0].copy()  # not the render buffer
        return obs, float(reward[0]), terminated, truncated, {"continue_prob": float(cont[0])}

    def render(self) -> np.ndarray | None:
        """The current frame as RGB uint8 (H, W, 3) when render_mode="rgb_array"; None without
        a render mode (Gymnasium's convention) or before the first reset."""
        if self.render_mode != "rgb_array" or self._latents is None:
            return None
        if self._frame is None:
            self._frame = self.core.decode(self._latents, self._state)[0]
        return self.core.render_frames(self._frame)
