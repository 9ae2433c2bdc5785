"""Feed-forward style networks with conditional instance normalization.

Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and Super-Resolution" (2016)
for the transformer layout; Dumoulin, Shlens & Kudlur, "A Learned Representation for Artistic Style"
(2017) for conditional instance norm: one set of convolutions, a learned scale and shift per style.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from service.contract import MEMORY_CHANNELS, pad_amounts

# "reflect": reflection padding everywhere (Johnson). "edges": reflect only where the picture's border shows (the
# first and last convolutions) and zero padding inside, which ONNX Runtime fuses into the convolution.
Padding = Literal["reflect", "edges"]
# "upsample_first": upsample, then the conv. "project_first": a 1x1 projection at the low resolution, then upsample
# and a depthwise 3x3 (a 1x1 conv commutes with a linear upsampling, so the projection costs a quarter; needs
# separable).
Decoder = Literal["upsample_first", "project_first"]
# "conv": a kernel x kernel conv (with a stride-2 stem it predicts the 2x2 sub-pixels and pixel-shuffles them).
# "transposed": a 2x2 stride-2 transposed conv straight to RGB (the same prediction from a 1x1 footprint).
# "upsampled": a 3x3 conv to RGB at half resolution, bilinear 2x, then a 3x3 conv at full resolution.
# "bilinear": the same without the full-resolution conv. The last two apply every learned weight the same way at
# each output pixel, so they cannot paint a sub-pixel mesh. All but "conv" need a stride-2 stem.
Output = Literal["conv", "transposed", "upsampled", "bilinear"]
# "nearest" (Johnson) or "bilinear": a fixed, symmetric interpolation that the convolutions after it cannot turn
# into a 2- or 4-pixel mesh (Odena et al. 2016, resize-convolution). Both tiers use bilinear.
Upsample = Literal["nearest", "bilinear"]
PADDINGS, DECODERS, OUTPUTS, UPSAMPLES = (get_args(t) for t in (Padding, Decoder, Output, Upsample))


def memory_input(rgb: torch.Tensor, trust: torch.Tensor) -> torch.Tensor:
    """A network's memory (``NetConfig.memory``) from a carried painting [B,3,H,W] and its trust [B,1,H,W]."""
    return torch.cat([rgb * trust, trust], dim=1)


@dataclass(frozen=True)
class NetConfig:
    """Everything that fixes the architecture; stored in every checkpoint."""

    num_styles: int
    widths: tuple[int, ...] = (32, 64, 128)  # encoder widths; each after the first halves the size
    res_blocks: int = 5
    in_kernel: int = 9
    out_kernel: int = 9
    stem_stride: int = 1  # 2 moves the first convolution off full resolution (realtime tier)
    separable: bool = False  # depthwise-separable residual and decoder convolutions
    padding: Padding = "reflect"  # see Padding above
    decoder: Decoder = "upsample_first"  # see Decoder
    output: Output = "conv"  # the last layer, see Output
    upsample: Upsample = "nearest"  # the decoder's upsampling, see Upsample
    # A second input, the memory: the previous output carried onto this frame and where it is trusted (the
    # contract's MEMORY_CHANNELS), added into each decoder stage before its norm through a 1x1 conv (Ruder et al.
    # 2018), so strokes can be carried from frame to frame instead of repainted. The convs start at zero: a network
    # grown from one without them paints the same, and a memory of zeros (a first frame, no flow) always does.
    memory: bool = False
    # With a memory, also a gate the network paints from its last decoder stage (zero at the start): the output is
    # blended toward the carried RGB by gate x trust at the frame's full size. Through the decoder the memory
    # arrives pooled, so a painting carried only that way loses its finest strokes on every frame.
    memory_gate: bool = False

    def __post_init__(self) -> None:
        if self.num_styles < 1:
            raise ValueError("num_styles must be >= 1")
        if len(self.widths) < 2 or any(w < 1 for w in self.widths):
            raise ValueError(f"widths needs at least two positive entries, got {self.widths}")
        if self.stem_stride not in (1, 2):
            raise ValueError("stem_stride must be 1 or 2")
        if self.in_kernel % 2 == 0 or self.out_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {UPSAMPLES}, got {self.upsample!r}")
        if self.output in ("transposed", "upsampled", "bilinear") and self.stem_stride != 2:
            raise ValueError(f"output {self.output!r} needs stem_stride 2")
        if self.decoder == "project_first" and not self.separable:
            raise ValueError("decoder 'project_first' needs separable convolutions")
        if self.memory_gate and not self.memory:
            raise ValueError("memory_gate blends the memory into the output: it needs memory")

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this so every down/up step is exact."""
        return self.stem_stride * 2 ** (len(self.widths) - 1)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"widths": list(self.widths)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetConfig:
        """Checkpoints and manifests from before a field existed get its default."""
        return cls(**(data | {"widths": tuple(data["widths"])}))


TIER_CONFIGS: dict[str, dict[str, Any]] = {
    # Johnson et al. size: about 1.7 M parameters; bilinear resize-convolution in the decoder (no mesh).
    "quality": dict(widths=(32, 64, 128), res_blocks=5, in_kernel=9, out_kernel=9, stem_stride=1, upsample="bilinear"),
    # Measured on 2 CPU cores through ONNX Runtime, speed and grid score: see docs/realtime-design.md.
    "realtime": dict(
        widths=(16, 32, 64),
        res_blocks=3,
        in_kernel=3,
        out_kernel=3,
        stem_stride=2,
        separable=True,
        padding="edges",
        decoder="project_first",
        output="bilinear",
        upsample="bilinear",
    ),
}


def tier_config(tier: str, num_styles: int) -> NetConfig:
    if tier not in TIER_CONFIGS:
        raise ValueError(f"unknown tier {tier!r}; choose from {sorted(TIER_CONFIGS)}")
    return NetConfig(num_styles=num_styles, **TIER_CONFIGS[tier])


class CondInstanceNorm(nn.Module):
    """Instance norm whose affine scale/shift is a weighted mix of per-style rows (Dumoulin et al.)."""

    eps = 1e-5

    def __init__(self, channels: int, num_styles: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_styles, channels))
        self.beta = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        # x [B,C,H,W], style_weights [B,S] -> [B,C,H,W]
        # The mixed scale/shift is the norm's own affine, so the export is one InstanceNormalization node
        # (no separate full-size multiply and add: 15% of a realtime frame on CPU). Each (sample, channel)
        # plane is normalized alone, so folding the batch into the channels changes nothing.
        b, c = x.shape[:2]
        gamma = (style_weights @ self.gamma).reshape(b * c)
        beta = (style_weights @ self.beta).reshape(b * c)
        y = F.instance_norm(x.reshape(1, b * c, *x.shape[2:]), weight=gamma, bias=beta, eps=self.eps)
        return y.reshape(x.shape)


def upsampler(mode: Upsample) -> nn.Module:
    """2x upsampling; bilinear uses half-pixel centres (ONNX Resize 'linear', 'half_pixel')."""
    return nn.Upsample(scale_factor=2, mode=mode, align_corners=False if mode == "bilinear" else None)


class ConvLayer(nn.Module):
    """Reflection-padded convolution; depthwise + pointwise when ``separable``."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int = 1, separable: bool = False, reflect: bool = True
    ) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2) if reflect else nn.Identity()
        zeros = 0 if reflect else kernel // 2
        if separable:
            self.conv: nn.Module = nn.Sequential(
                nn.Conv2d(c_in, c_in, kernel, stride, zeros, groups=c_in, bias=False),
                nn.Conv2d(c_in, c_out, 1),
            )
        else:
            self.conv = nn.Conv2d(c_in, c_out, kernel, stride, zeros)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B,c_in,H,W] -> [B,c_out,H/stride,W/stride]
        return self.conv(self.pad(x))


class ConvNormReLU(nn.Module):
    """Optional 2x upsample (``mode``), convolution, conditional instance norm, ReLU."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        num_styles: int,
        stride: int = 1,
        upsample: bool = False,
        separable: bool = False,
        reflect: bool = True,
        mode: Upsample = "nearest",
    ) -> None:
        super().__init__()
        self.upsample = upsampler(mode) if upsample else nn.Identity()
        self.conv = ConvLayer(c_in, c_out, kernel, stride, separable, reflect)
        self.norm = CondInstanceNorm(c_out, num_styles)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        # [B,c_in,H,W] (+ extra [B,c_out,H',W'] added before the norm) -> [B,c_out,H'=H*up/stride,W'=W*up/stride]
        y = self.conv(self.upsample(x))
        return self.relu(self.norm(y if extra is None else y + extra, style_weights))


class ProjectUpsampleNormReLU(nn.Module):
    """1x1 projection at the low resolution, 2x upsample (``mode``), depthwise 3x3, conditional norm, ReLU."""

    def __init__(self, c_in: int, c_out: int, num_styles: int, reflect: bool, mode: Upsample = "nearest") -> None:
        super().__init__()
        self.project = nn.Conv2d(c_in, c_out, 1, bias=False)  # commutes with either upsampling: both are linear
        self.upsample = upsampler(mode)
        self.pad = nn.ReflectionPad2d(1) if reflect else nn.Identity()
        self.depthwise = nn.Conv2d(c_out, c_out, 3, padding=0 if reflect else 1, groups=c_out)
        self.norm = CondInstanceNorm(c_out, num_styles)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        # [B,c_in,H,W] (+ extra [B,c_out,2H,2W] added before the norm) -> [B,c_out,2H,2W]
        y = self.depthwise(self.pad(self.upsample(self.project(x))))
        return self.relu(self.norm(y if extra is None else y + extra, style_weights))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with conditional norm and an identity skip (He et al. 2016)."""

    def __init__(self, channels: int, num_styles: int, separable: bool, reflect: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, separable=separable, reflect=reflect)
        self.norm1 = CondInstanceNorm(channels, num_styles)
        self.relu = nn.ReLU()
        self.conv2 = ConvLayer(channels, channels, 3, separable=separable, reflect=reflect)
        self.norm2 = CondInstanceNorm(channels, num_styles)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        # [B,C,H,W] -> [B,C,H,W]
        y = self.relu(self.norm1(self.conv1(x), style_weights))
        return x + self.norm2(self.conv2(y), style_weights)


class OutputLayer(nn.Module):
    """Last convolution to RGB; with a strided stem it runs at half resolution and pixel-shuffles up.

    Convolving at full resolution costs more than the rest of the realtime network on a CPU, so the
    conv predicts the 2x2 sub-pixels instead (Shi et al. 2016), initialised ICNR-style (Aitken et al.
    2017) so that it starts out equal to nearest upsampling and shows no checkerboard.
    """

    def __init__(self, c_in: int, kernel: int, upscale: int) -> None:
        super().__init__()
        self.conv = ConvLayer(c_in, 3 * upscale * upscale, kernel)
        self.shuffle = nn.PixelShuffle(upscale) if upscale > 1 else nn.Identity()
        if upscale > 1:
            conv = self.conv.conv
            assert isinstance(conv, nn.Conv2d) and conv.bias is not None
            with torch.no_grad():
                base = conv.weight[:3].clone()
                conv.weight.copy_(base.repeat_interleave(upscale * upscale, dim=0))
                conv.bias.copy_(conv.bias[:3].clone().repeat_interleave(upscale * upscale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B,C,H,W] -> [B,3,H*upscale,W*upscale]
        return self.shuffle(self.conv(x))


class TransposedOutput(nn.Module):
    """2x2 stride-2 transposed convolution to RGB: each input pixel paints its own 2x2 output block.

    The blocks do not overlap, so there is no uneven-overlap checkerboard (Odena et al. 2016); the four
    sub-pixel kernels start equal (ICNR-style), i.e. as nearest upsampling of a 1x1 convolution.
    """

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, 3, 2, 2)
        with torch.no_grad():
            self.conv.weight.copy_(self.conv.weight[:, :, :1, :1].expand_as(self.conv.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B,C,H,W] -> [B,3,2H,2W]
        return self.conv(x)


class UpsampledOutput(nn.Module):
    """RGB at half resolution, bilinear 2x, then a 3x3 conv at full resolution (resize-convolution).

    Unlike a transposed or sub-pixel output, no weight belongs to one sub-pixel position, so a flat
    area cannot turn into a 2-pixel mesh; the full-resolution conv restores edges the bilinear step softens.
    """

    def __init__(self, c_in: int, sharpen: bool = True) -> None:
        super().__init__()
        self.low = nn.Conv2d(c_in, 3, 3, padding=1)
        # Without the full-size conv the sigmoid runs at half size, before the upsampling (a bilinear mix of
        # values in [0, 1] stays in [0, 1]): a quarter of its cost. StyleNet then adds no squash of its own.
        self.squash: nn.Module = nn.Identity() if sharpen else nn.Sigmoid()
        self.upsample = upsampler("bilinear")
        self.high: nn.Module = nn.Identity()
        if sharpen:  # starts as the identity: the network begins as a bilinear upsampling of its RGB
            high = nn.Conv2d(3, 3, 3, padding=1, padding_mode="replicate")
            assert high.bias is not None
            with torch.no_grad():
                high.weight.zero_()
                high.bias.zero_()
                high.weight[range(3), range(3), 1, 1] = 1.0
            self.high = high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B,C,H,W] -> [B,3,2H,2W]
        return self.high(self.upsample(self.squash(self.low(x))))


class StyleNet(nn.Module):
    """Johnson-style transformer: strided convs down, residual blocks, upsample (``config.upsample``) + conv up."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        w, s, sep = config.widths, config.num_styles, config.separable
        inner = config.padding == "reflect"  # reflect inside too, or only at the first and last convs
        down = [ConvNormReLU(3, w[0], config.in_kernel, s, stride=config.stem_stride)]
        down += [ConvNormReLU(w[i - 1], w[i], 3, s, stride=2, reflect=inner) for i in range(1, len(w))]
        self.down = nn.ModuleList(down)
        self.res = nn.ModuleList(ResidualBlock(w[-1], s, sep, inner) for _ in range(config.res_blocks))
        up: list[nn.Module] = []
        for i in range(len(w) - 1, 0, -1):
            if config.decoder == "project_first":
                up.append(ProjectUpsampleNormReLU(w[i], w[i - 1], s, reflect=inner, mode=config.upsample))
            else:
                up.append(
                    ConvNormReLU(
                        w[i], w[i - 1], 3, s, upsample=True, separable=sep, reflect=inner, mode=config.upsample
                    )
                )
        self.up = nn.ModuleList(up)
        # remember[k] paints the memory, pooled to up[k]'s size, onto its width; zero at the start (NetConfig.memory).
        remember = [nn.Conv2d(MEMORY_CHANNELS, w[i - 1], 1, bias=False) for i in range(len(w) - 1, 0, -1)]
        for conv in remember:
            nn.init.zeros_(conv.weight)
        self.remember = nn.ModuleList(remember if config.memory else [])
        self.gate: nn.Conv2d | None = None
        if config.memory_gate:
            gate = nn.Conv2d(w[0], 1, 3, padding=1)
            assert gate.bias is not None
            nn.init.zeros_(gate.weight)
            nn.init.zeros_(gate.bias)
            self.gate = gate
        self.out: nn.Module
        if config.output == "transposed":
            self.out = TransposedOutput(w[0])
        elif config.output in ("upsampled", "bilinear"):
            self.out = UpsampledOutput(w[0], sharpen=config.output == "upsampled")
        else:
            self.out = OutputLayer(w[0], config.out_kernel, config.stem_stride)
        self.squash = nn.Identity() if config.output == "bilinear" else nn.Sigmoid()  # "bilinear" squashes inside

    def forward(
        self, frame: torch.Tensor, style_weights: torch.Tensor, memory: torch.Tensor | None = None
    ) -> torch.Tensor:
        # frame [B,3,H,W] in [0,1] with H,W multiples of size_multiple, style_weights [B,S] -> [B,3,H,W] in [0,1];
        # memory [B,MEMORY_CHANNELS,H,W] (NetConfig.memory; None: all zeros, painting as a network without one)
        x = frame
        for layer in [*self.down, *self.res]:
            x = layer(x, style_weights)
        if memory is not None and not self.remember:
            raise ValueError("this network takes no memory (NetConfig.memory is off)")
        pooled = self._pooled(memory) if memory is not None else []
        for k, stage in enumerate(self.up):
            x = stage(x, style_weights, self.remember[k](pooled[k]) if pooled else None)
        if memory is None or self.gate is None:
            return self.squash(self.out(x))
        out, say = self._paint_and_say(x, self.gate)
        gate = say.clamp(0.0, 1.0)  # clamp, not a sigmoid: exactly 0 at the start, and it still learns
        if gate.shape[-2:] != out.shape[-2:]:
            gate = F.interpolate(gate, size=out.shape[-2:], mode="bilinear", align_corners=False)
        held = gate * memory[:, 3:]
        return out * (1.0 - held) + gate * memory[:, :3]  # memory[:, :3] is already the RGB times its trust

    def _paint_and_say(self, x: torch.Tensor, gate: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
        """The painting and the gate's say. Where the output is a bilinear one (its RGB a 3x3 conv of the same
        features as the gate's), the two run as one conv of 4 channels, the same numbers: ONNX Runtime's blocked
        layout pads a 3-channel conv's outputs to its block width anyway, so the gate's conv then costs nothing."""
        out = self.out
        if not (isinstance(out, UpsampledOutput) and isinstance(out.high, nn.Identity)):
            return self.squash(out(x)), gate(x)
        low, bias = out.low, torch.cat([b for b in (out.low.bias, gate.bias) if b is not None])
        both = F.conv2d(x, torch.cat([low.weight, gate.weight]), bias, padding=low.padding)
        return out.upsample(out.squash(both[:, :3])), both[:, 3:]

    def _pooled(self, memory: torch.Tensor) -> list[torch.Tensor]:
        """The memory at each decoder stage's size, coarsest first: each the finer one halved (the blocks nest, so
        it is the average over the stage's block), one full-size read instead of one per stage."""
        stride = self.config.stem_stride
        sizes = [F.avg_pool2d(memory, stride) if stride > 1 else memory]
        while len(sizes) < len(self.up):
            sizes.append(F.avg_pool2d(sizes[-1], 2))
        return sizes[::-1]

    def bottleneck(self) -> nn.Module:
        """The layer whose output the decoder starts from (the last residual block, else the encoder's last)."""
        return self.res[-1] if len(self.res) else self.down[-1]

    def stylize_any_size(self, frame: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        """Reflect-pad to the size multiple, run, crop back: any H, W works."""
        h, w = frame.shape[-2:]
        ph, pw = pad_amounts(h, w, self.config.size_multiple)
        mode = "reflect" if ph < h and pw < w else "replicate"
        padded = F.pad(frame, (0, pw, 0, ph), mode=mode) if ph or pw else frame
        return self(padded, style_weights)[..., :h, :w]

    def norms(self) -> list[CondInstanceNorm]:
        return [m for m in self.modules() if isinstance(m, CondInstanceNorm)]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
