"""Perceptual distance between images: ST-LPIPS (default, offline), LPIPS (optional), or none.

"stlpips" is the shift-tolerant LPIPS of Ghildyal & Liu (ECCV 2022): an anti-aliased AlexNet or
VGG16 trunk (stride-1 convolutions and max-pools followed by reflect-padded binomial blur-pool
downsampling) whose five feature taps are unit-normalised over channels, compared by squared
difference, weighted per channel by learned 1x1 "linear" layers, averaged over space and summed.
The learned weights ship inside the `stlpips-pytorch` wheel; this module re-implements the
network and loads those files (its code imports torchvision, which is not used here).

The frozen network weights are non-persistent buffers: they never reach an optimizer or a
checkpoint, and gradients still flow to the inputs.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BACKENDS = ("stlpips", "lpips", "none")
NETS = ("alex", "vgg")
MIN_SIZE = 64  # BAPPS patch size the ST-LPIPS heads were trained on; smaller images are upsampled

# LPIPS input normalisation: inputs in [-1, 1], then (x - shift) / scale per RGB channel.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)

# Trunk specs, one list per feature tap: ("conv", c_in, c_out, kernel, padding),
# ("pool", kernel) = stride-1 max-pool followed by a stride-2 blur-pool, ("blur",), ("relu",).
_ALEX = [
    [("conv", 3, 64, 11, 2), ("blur",), ("relu",)],
    [("pool", 3), ("conv", 64, 192, 5, 2), ("relu",)],
    [("pool", 3), ("conv", 192, 384, 3, 1), ("relu",)],
    [("conv", 384, 256, 3, 1), ("relu",)],
    [("conv", 256, 256, 3, 1), ("relu",)],
]


def _vgg_spec() -> list[list[tuple]]:
    widths = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]
    spec, c_in = [], 3
    for i, stage in enumerate(widths):
        layers: list[tuple] = [] if i == 0 else [("pool", 2)]
        for c_out in stage:
            layers += [("conv", c_in, c_out, 3, 1), ("relu",)]
            c_in = c_out
        spec.append(layers)
    return spec


class _FrozenConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, padding: int) -> None:
        super().__init__()
        self.padding = padding
        self.register_buffer("weight", torch.zeros(c_out, c_in, kernel, kernel), persistent=False)
        self.register_buffer("bias", torch.zeros(c_out), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class _BlurPool(nn.Module):
    """Anti-aliased stride-2 downsampling: reflect pad 2, depthwise [1 2 1]^T [1 2 1] / 16."""

    def __init__(self) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("filt", (taps[:, None] * taps[None, :] / 16.0)[None, None], False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (2, 2, 2, 2), mode="reflect")
        return F.conv2d(x, self.filt.expand(channels, 1, 3, 3), stride=2, groups=channels)


def _build_stage(spec: list[tuple]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for kind, *args in spec:
        if kind == "conv":
            layers.append(_FrozenConv(*args))
        elif kind == "pool":
            layers += [nn.MaxPool2d(args[0], stride=1), _BlurPool()]
        elif kind == "blur":
            layers.append(_BlurPool())
        else:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def stlpips_weights_path(net: str) -> Path:
    """Path of the learned ST-LPIPS weights inside the installed `stlpips-pytorch` wheel."""
    spec = importlib.util.find_spec("stlpips_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the ST-LPIPS weights come with the `stlpips-pytorch` package: "
            "run `pip install stlpips-pytorch`, or choose the perceptual backend 'none'"
        )
    path = Path(spec.submodule_search_locations[0]) / "weights" / "vST0.0"
    path = path / f"{net}_shift_tolerant.pth"
    if not path.is_file():
        raise FileNotFoundError(
            f"ST-LPIPS weights not found at {path}: reinstall them with `pip install "
            "--force-reinstall stlpips-pytorch`, or choose the perceptual backend 'none'"
        )
    return path


class STLPIPS(nn.Module):
    """Shift-tolerant LPIPS distance; inputs (N, 3, H, W) in [-1, 1], output (N,)."""

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in NETS:
            raise ValueError(f"unknown ST-LPIPS net {net!r}; choose one of {NETS}")
        spec = _ALEX if net == "alex" else _vgg_spec()
        self.stages = nn.ModuleList(_build_stage(s) for s in spec)
        widths = [[layer[2] for layer in s if layer[0] == "conv"][-1] for s in spec]
        for k, width in enumerate(widths):
            self.register_buffer(f"lin{k}", torch.zeros(1, width, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self._load(stlpips_weights_path(net))

    @torch.no_grad()
    def _load(self, path: Path) -> None:
        """Copy the wheel's state dict (keys `net.slice{k}.{i}.weight`, `lin{k}.model.1.weight`,
        `scaling_layer.*`) into our buffers, checking that every tensor is found with its shape."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        targets: dict[str, torch.Tensor] = {
            "scaling_layer.shift": self.shift,
            "scaling_layer.scale": self.scale,
        }
        for k, stage in enumerate(self.stages):
            targets[f"lin{k}.model.1.weight"] = getattr(self, f"lin{k}")
            prefix = f"net.slice{k + 1}."
            indices = sorted({int(key.split(".")[2]) for key in state if key.startswith(prefix)})
            convs = [m for m in stage if isinstance(m, _FrozenConv)]
            conv_indices = [i for i in indices if f"{prefix}{i}.weight" in state]
            if len(conv_indices) != len(convs):
                raise ValueError(f"{path} does not match the ST-LPIPS architecture (stage {k})")
            for i, conv in zip(conv_indices, convs, strict=True):
                targets[f"{prefix}{i}.weight"] = conv.weight
                targets[f"{prefix}{i}.bias"] = conv.bias
        for key, target in targets.items():
            if key not in state or state[key].shape != target.shape:
                raise ValueError(f"{path}: tensor {key!r} missing or of the wrong shape")
            target.copy_(state[key])

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for stage in self.stages:
            x = stage(x)
            taps.append(x)
        return taps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        feats = self.features((torch.cat([x, y]) - self.shift) / self.scale)
        dist = x.new_zeros(n)
        for k, f in enumerate(feats):
            # Unit length over channels; eps inside the sqrt keeps the gradient finite at 0.
            f = f * torch.rsqrt(f.pow(2).sum(dim=1, keepdim=True) + 1e-20)
            diff = (f[:n] - f[n:]).pow(2)
            dist = dist + F.conv2d(diff, getattr(self, f"lin{k}")).mean(dim=(1, 2, 3))
        return dist


def _lpips_model(net: str) -> nn.Module:
    try:
        import lpips
    except Exception as err:  # ImportError, or torchvision failing to load beside this torch
        raise ImportError(
            "the 'lpips' perceptual backend needs the optional `lpips` package and a working "
            "torchvision: `pip install 'dreamgym[lpips]'`, or use the backend 'stlpips' (offline "
            f"default) or 'none' ({type(err).__name__}: {err})"
        ) from err
    try:
        return lpips.LPIPS(net=net, verbose=False)
    except Exception as err:
        raise RuntimeError(
            f"could not build lpips.LPIPS(net={net!r}); it downloads its {net} backbone on first "
            "use, so it needs network access once. Use the backend 'stlpips' to stay offline "
            f"({type(err).__name__}: {err})"
        ) from err


class PerceptualLoss(nn.Module):
    """Perceptual distance per image: forward(x, y) with x, y (N, C, H, W) in [0, 1] -> (N,).

    Backends: "stlpips" (learned shift-tolerant LPIPS from the `stlpips-pytorch` wheel, offline),
    "lpips" (the optional `lpips` package), "none" (zeros). One-channel images are repeated to
    RGB. Images whose smaller side is under 64 pixels are upsampled bilinearly so it is 64: the
    networks were trained on 64x64 patches (where AlexNet's last tap is 8x8), and the shift-
    tolerant AlexNet fails outright below ~24 pixels. Weights are frozen; gradients flow to the
    inputs.
    """

    def __init__(self, backend: str = "stlpips", net: str = "alex") -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown perceptual backend {backend!r}; choose one of {BACKENDS}")
        if net not in NETS:
            raise ValueError(f"unknown perceptual net {net!r}; choose one of {NETS}")
        self.backend, self.net = backend, net
        self.model: nn.Module | None = None
        if backend == "stlpips":
            self.model = STLPIPS(net)
        elif backend == "lpips":
            self.model = _lpips_model(net)
            for p in self.model.parameters():
                p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Always in eval mode (the networks have dropout in `lpips`); returns self."""
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape != y.shape or x.shape[1] not in (1, 3):
            raise ValueError(
                "perceptual distance expects two (N, C, H, W) tensors of one shape with C = 1 "
                f"or 3, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if self.model is None:
            return x.new_zeros(x.shape[0])
        if x.shape[1] == 1:
            x, y = x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)
        height, width = x.shape[2:]
        if min(height, width) < MIN_SIZE:
            factor = MIN_SIZE / min(height, width)
            size = (math.ceil(height * factor), math.ceil(width * factor))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return self.model(2 * x - 1, 2 * y - 1).reshape(x.shape[0])
