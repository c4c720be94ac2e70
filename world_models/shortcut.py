"""Shortcut forcing (Dreamer 4): noise levels, the training target and the few-step sampler.

Convention (everywhere): signal level tau in [0, 1], tau = 1 is clean data,
z_tau = tau * x + (1 - tau) * noise. The network predicts clean data x_hat (x-prediction); its
velocity is v = (x_hat - z_tau) / (1 - tau) and a step of size d moves z_tau to
z_{tau + d} = z_tau + d * v. Step sizes d are in {1, 1/2, ..., 1/K_max}.

Training (per frame, diffusion forcing: every frame its own tau and d):
- d = 1 / k with k ~ U{1, 2, 4, ..., K_max}; tau ~ U{0, d, 2d, ..., 1 - d} (the grid d reaches).
- d = d_min = 1 / K_max: flow loss in x-space, ||x_hat - x||^2.
- d > d_min: bootstrap. Two half steps with the model (no gradient): b' at (z, tau, d/2), then
  b'' at (z + b' d/2, tau + d/2, d/2); the loss is (1 - tau)^2 ||v_hat - sg(b' + b'') / 2||^2.
  Since v_hat = (x_hat - z) / (1 - tau), this equals ||x_hat - x_target||^2 with
  x_target = z + (1 - tau) * sg(b' + b'') / 2, which is how it is computed (no division by a
  small 1 - tau in the loss).
- Each frame's loss is weighted by the ramp w(tau) = 0.9 tau + 0.1 (setting: uniform weight).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

DenoiseFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Generators = torch.Generator | Sequence[torch.Generator] | None
SAMPLERS = ("euler", "renoise")


def randn(
    shape: tuple[int, ...],
    generator: Generators = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Standard normal noise. With a sequence of generators, row i (of shape[0]) is drawn from
    generator i, so a batch of rollouts draws exactly what each would draw alone."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if len(generator) != shape[0]:
        raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]} rows")
    rows = [torch.randn(shape[1:], generator=g, device=device, dtype=dtype) for g in generator]
    return torch.stack(rows)


def check_k_max(k_max: int) -> None:
    """Raise unless k_max is a power of two >= 1."""
    if k_max < 1 or k_max & (k_max - 1):
        raise ValueError(f"k_max must be a power of two (1, 2, 4, ..., 64), got {k_max}")


def sample_tau_d(
    shape: tuple[int, ...],
    k_max: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    flow_share: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tau, d), each float32 of `shape`: d = 1 / U{1, 2, 4, ..., k_max}, tau on d's grid.

    flow_share: the share of entries set to d = 1 / k_max (flow loss) before the rest draw d
    as above; 0 is Dreamer 4, the shortcut-models paper uses 0.75.
    """
    check_k_max(k_max)
    levels = k_max.bit_length()  # log2(k_max) + 1 choices of d
    k = 2 ** torch.randint(0, levels, shape, generator=generator, device=device)
    if flow_share > 0:
        flow = torch.rand(shape, generator=generator, device=device) < flow_share
        k = torch.where(flow, torch.full_like(k, k_max), k)
    j = (torch.rand(shape, generator=generator, device=device) * k).floor().clamp(max=k - 1)
    return j / k, 1.0 / k


def expand_as(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-frame values t (B, T) or (B,) -> broadcastable against like (B, T, ...) or (B, ...)."""
    return t.reshape(*t.shape, *([1] * (like.ndim - t.ndim))).to(like.dtype)


def add_noise(x: torch.Tensor, tau: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """z_tau = tau * x + (1 - tau) * noise; tau (B, T) broadcasts over x (B, T, ...)."""
    t = expand_as(tau, x)
    return t * x + (1 - t) * noise


def velocity(x_hat: torch.Tensor, z: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """v = (x_hat - z) / (1 - tau), the flow from z_tau towards the predicted clean data."""
    return (x_hat - z) / (1 - expand_as(tau, z))


def ramp_weight(tau: torch.Tensor) -> torch.Tensor:
    """w(tau) = 0.9 tau + 0.1: more weight on frames with more signal."""
    return 0.9 * tau + 0.1


@torch.no_grad()
def shortcut_target(
    denoise: DenoiseFn,
    x: torch.Tensor,
    z: torch.Tensor,
    tau: torch.Tensor,
    d: torch.Tensor,
    k_max: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets for x_hat = denoise(z, tau, d): (target like x, bootstrap mask like tau).

    Frames with d = 1 / k_max get the clean data x; the others the bootstrap x_target. The two
    teacher passes run over whole sequences: frames that do not bootstrap keep their (z, tau, d)
    in both passes, so they are unchanged context for the others. Bootstrapping frames all take
    their half step together, so in the second pass a frame's earlier bootstrapping frames are
    half a step cleaner than the student saw them: the price of two passes per sequence rather
    than two per frame.
    """
    boot = d > 1.0 / k_max * 1.5
    if not bool(boot.any()):
        return x, boot
    half = torch.where(boot, d / 2, d)
    b1 = velocity(denoise(z, tau, half), z, tau)
    mask = expand_as(boot, z).bool()
    z2 = torch.where(mask, z + expand_as(half, z) * b1, z)
    tau2 = torch.where(boot, tau + half, tau)
    b2 = velocity(denoise(z2, tau2, half), z2, tau2)
    x_target = z + expand_as(1 - tau, z) * (b1 + b2) / 2
    return torch.where(mask, x_target, x), boot


def sample(
    denoise: DenoiseFn,
    noise_shape: tuple[int, ...],
    num_steps: int,
    k_max: int,
    generator: Generators = None,
    sampler: str = "renoise",
    device: torch.device | str | None = None,
    told_d: float | None = None,
) -> torch.Tensor:
    """Generate clean data in `num_steps` shortcut steps of size d = 1 / num_steps from noise.

    denoise(z, tau, d) -> x_hat gets z (*noise_shape) and tau, d of shape noise_shape[:1].
    generator: one, or one per row of noise_shape[0] (see `randn`).
    sampler "euler": the shortcut step z <- z + d * v (what the bootstrap target is built from;
        the noise is drawn once, fresh for every call). "renoise": z <- tau' x_hat + (1 - tau')
        eps with FRESH noise eps at every sub-step (never the initial noise again).
    told_d: the step size the denoiser is told at every sub-step; None (the paper) tells it
        the step taken, 1 / num_steps; 1 / k_max asks for its finest-step (flow) prediction.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if num_steps < 1 or num_steps > k_max or num_steps & (num_steps - 1):
        raise ValueError(
            f"num_steps must be a power of two between 1 and k_max={k_max}, got {num_steps}"
        )
    d = 1.0 / num_steps
    z = randn(noise_shape, generator, device)
    d_vec = torch.full(noise_shape[:1], d if told_d is None else told_d, device=z.device)
    for i in range(num_steps - 1):
        tau = torch.full(noise_shape[:1], i * d, device=z.device)
        x_hat = denoise(z, tau, d_vec)
        if sampler == "euler":
            z = z + d * velocity(x_hat, z, tau)
        else:
            fresh = randn(noise_shape, generator, device)
            z = add_noise(x_hat, tau + d, fresh)
    return denoise(z, torch.full(noise_shape[:1], 1 - d, device=z.device), d_vec)
