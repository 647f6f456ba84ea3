"""The transform network rearranged for inference: the same function as TransformerNet, fewer operations.

Three exact rewrites (equal up to float rounding; export verifies every exported model against TransformerNet):

* the 0..255 pixel scale is folded into the first and last convolutions' weights (two elementwise ops fewer);
* nearest ×2 upsampling + reflection pad + 3×3 conv becomes a sub-pixel convolution: each of the four output
  phases only ever sees a 2×2 neighbourhood of the low-resolution input, which needs 16/36 of the multiply-adds
  (reflection padding of the upsampled map equals replicate padding of the input before upsampling);
* the last 9×9 conv has only 3 output channels, which blocked CPU kernels (ONNX Runtime's NCHWc, oneDNN) pad to
  16 — 5× wasted work on the largest layer. It is split into five 9×2 column groups stacked as 15 (+1 zero)
  output channels and summed back with shifted slices, so the padded channels do useful work.

Norm layers are the original model's own modules (shared, in the same order), so instance-norm statistics hooks
on them keep working.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastnst.model.transformer import MIN_INTERNAL_SIDE, PIXEL_SCALE, SIZE_MULTIPLE, TransformerNet

# Column groups of the last conv: 9 kernel columns → 5 groups of 2 (the 10th column is zero); 5 × 3 colours =
# 15 output channels, padded to 16, the NCHWc block size of AVX-512 and a multiple of AVX2's 8.
_LAST_GROUP_WIDTH = 2
_LAST_CHANNELS = 16
UPSAMPLE_MODES = ("transposed", "shuffle")


def _parts(layer: nn.Module) -> tuple[nn.Conv2d, nn.Module | None, bool]:
    """(conv, norm or None, has ReLU) of a ConvLayer (reflection pad → conv → [norm] → [ReLU])."""
    conv = next(m for m in layer.children() if isinstance(m, nn.Conv2d))
    norm = next((m for m in layer.children() if isinstance(m, nn.InstanceNorm2d)), None)
    return conv, norm, any(isinstance(m, nn.ReLU) for m in layer.children())


class _Conv(nn.Module):
    """Reflection pad → conv → [norm] → [ReLU] with plain parameters (the weights may be rescaled)."""

    def __init__(self, conv: nn.Conv2d, norm: nn.Module | None, relu: bool, scale: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach() * scale, requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)  # type: ignore[union-attr]
        self.stride = conv.stride
        self.pad = conv.kernel_size[0] // 2
        self.norm = norm
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(F.pad(x, (self.pad,) * 4, mode="reflect"), self.weight, self.bias, self.stride)
        if self.norm is not None:
            x = self.norm(x)
        return F.relu(x) if self.relu else x


def _phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """3×3 kernels of a conv after nearest ×2 upsampling → [2, 2, cout, cin, 2, 2] kernels per output phase.

    Output row 2i+a sees upsampled rows 2i+a-1..2i+a+1, i.e. input rows {i-1, i, i} (a=0) or {i, i, i+1} (a=1):
    the kernel's three rows collapse onto two input rows; columns likewise.
    """
    collapse = weight.new_tensor([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]])  # [phase, 2 taps, 3 rows]
    return torch.stack([torch.stack([torch.einsum("rk,oikl,sl->oirs", collapse[a], weight, collapse[b])
                                     for b in (0, 1)]) for a in (0, 1)])


class _SubPixelUpConv(nn.Module):
    """nearest ×2 → reflection pad 1 → 3×3 conv → norm → ReLU, with 16/36 of the multiply-adds.

    Reflection padding of the upsampled map equals replicate padding of the input before upsampling, so the
    input is replicate-padded by 1 and each output phase is a 2×2 conv of it. ``mode`` picks how the phases are
    computed: "transposed" — one stride-2 transposed conv with a 4×4 kernel whose taps are the phase kernels
    (fastest in ONNX Runtime's fp32 CPU kernels and on GPUs); "shuffle" — one 2×2 conv with 4·cout channels and a
    pixel shuffle (only plain convs, which int8 quantization needs: ONNX Runtime has no int8 transposed conv).
    """

    def __init__(self, conv: nn.Conv2d, norm: nn.Module | None, relu: bool, mode: str) -> None:
        super().__init__()
        phases = _phase_kernels(conv.weight.detach())  # [a, b, cout, cin, 2, 2]
        bias = conv.bias.detach()  # type: ignore[union-attr]
        self.mode = mode
        self.cout = phases.shape[2]
        if mode == "transposed":
            # Transposed conv, stride 2, padding 3, on the padded input: output row 2i+a takes padded rows i+a
            # (kernel tap 3-a) and i+a+1 (tap 1-a); the same for columns.
            kernel = phases.new_zeros(phases.shape[3], self.cout, 4, 4)  # [cin, cout, 4, 4]
            for a in (0, 1):
                for b in (0, 1):
                    for r in (0, 1):
                        for t in (0, 1):
                            kernel[:, :, 3 - a - 2 * r, 3 - b - 2 * t] = phases[a, b, :, :, r, t].t()
            self.weight = nn.Parameter(kernel, requires_grad=False)
            self.bias = nn.Parameter(bias.clone(), requires_grad=False)
        elif mode == "shuffle":
            # Channel c·4 + 2a + b holds phase (a, b) of output channel c: pixel_shuffle's channel order.
            kernel = phases.permute(2, 0, 1, 3, 4, 5).reshape(4 * self.cout, phases.shape[3], 2, 2)
            self.weight = nn.Parameter(kernel, requires_grad=False)
            self.bias = nn.Parameter(bias.repeat_interleave(4), requires_grad=False)
        else:
            raise ValueError(f"unknown upsampling mode {mode!r}; expected one of {', '.join(UPSAMPLE_MODES)}")
        self.norm = norm
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        if self.mode == "transposed":
            y = F.conv_transpose2d(x, self.weight, self.bias, stride=2, padding=3)  # [N, cout, 2H, 2W]
        else:
            y = F.conv2d(x, self.weight, self.bias).reshape(n, self.cout, 4, h + 1, w + 1)
            # Phase (a, b) reads padded rows a..a+H and columns b..b+W.
            y = torch.stack([y[:, :, 2 * a + b, a:a + h, b:b + w] for a in (0, 1) for b in (0, 1)], 2)
            y = F.pixel_shuffle(y.reshape(n, 4 * self.cout, h, w), 2)  # [N, cout, 2H, 2W]
        if self.norm is not None:
            y = self.norm(y)
        return F.relu(y) if self.relu else y


class _ColumnGroupedConv(nn.Module):
    """The last conv (few output channels, wide kernel) as column groups stacked along output channels."""

    def __init__(self, conv: nn.Conv2d, scale: float) -> None:
        super().__init__()
        w = conv.weight.detach() * scale  # [cout, cin, k, k]
        cout, cin, k, _ = w.shape
        self.groups = -(-k // _LAST_GROUP_WIDTH)
        self.cout = cout
        self.pad = k // 2
        padded = F.pad(w, (0, self.groups * _LAST_GROUP_WIDTH - k))  # zero kernel columns up to 5 × 2
        stacked = torch.cat([padded[..., g * _LAST_GROUP_WIDTH:(g + 1) * _LAST_GROUP_WIDTH]
                             for g in range(self.groups)])  # [groups·cout, cin, k, 2], group-major
        spare = max(0, _LAST_CHANNELS - stacked.shape[0])
        self.weight = nn.Parameter(torch.cat([stacked, stacked.new_zeros(spare, cin, k, _LAST_GROUP_WIDTH)]),
                                   requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach() * scale, requires_grad=False)  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.shape[-1]
        p = self.pad
        # Pad one extra column on the right so the zero 10th kernel column never reads past the edge.
        x = F.pad(F.pad(x, (p, p, p, p), mode="reflect"), (0, 1))
        z = F.conv2d(x, self.weight)  # [N, 16, H, W + 2·pad + 2 - width]
        c, gw = self.cout, _LAST_GROUP_WIDTH
        out = z[:, 0:c, :, 0:w]
        for g in range(1, self.groups):
            out = out + z[:, g * c:(g + 1) * c, :, g * gw:g * gw + w]
        return out + self.bias[:, None, None]


class FusedTransformer(nn.Module):
    """TransformerNet for inference: [N, 3, H, W] in [0, 1] → stylized, clamped to [0, 1], same size.

    The graph pads H and W to multiples of 4 with reflection (valid for H, W ≥ 16, the exported input's minimum);
    :func:`pad_for_network` handles smaller images before the call, as TransformerNet does.
    """

    def __init__(self, net: TransformerNet, upsample: str = "transposed") -> None:
        super().__init__()
        enc = [_parts(layer) for layer in net.encoder]
        first_conv, first_norm, first_relu = enc[0]
        layers: list[nn.Module] = [_Conv(first_conv, first_norm, first_relu, scale=PIXEL_SCALE)]
        layers += [_Conv(*parts) for parts in enc[1:]]
        self.encoder = nn.Sequential(*layers)
        self.residuals = nn.ModuleList(
            nn.Sequential(*[_Conv(*_parts(layer)) for layer in block.body]) for block in net.residuals
        )
        up = [_parts(layer[1]) for layer in list(net.decoder)[:-1]]  # UpsampleConv = (Upsample, ConvLayer)
        self.upsamplers = nn.Sequential(*[_SubPixelUpConv(*parts, mode=upsample) for parts in up])
        last_conv, _, _ = _parts(net.decoder[-1])
        self.output = _ColumnGroupedConv(last_conv, scale=1.0 / PIXEL_SCALE)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        x = F.pad(image, (0, (SIZE_MULTIPLE - w % SIZE_MULTIPLE) % SIZE_MULTIPLE,
                          0, (SIZE_MULTIPLE - h % SIZE_MULTIPLE) % SIZE_MULTIPLE), mode="reflect")
        x = self.encoder(x)
        for block in self.residuals:
            x = x + block(x)
        y = self.output(self.upsamplers(x))
        return y[..., :h, :w].clamp(0.0, 1.0)


def pad_for_network(batch: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Pad a batch the way TransformerNet does (to ≥ 16 px and a multiple of 4); returns it and the size to crop."""
    h, w = batch.shape[-2:]
    pad_h = max(MIN_INTERNAL_SIDE - h, (-h) % SIZE_MULTIPLE)
    pad_w = max(MIN_INTERNAL_SIDE - w, (-w) % SIZE_MULTIPLE)
    if pad_h or pad_w:
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        batch = F.pad(batch, (0, pad_w, 0, pad_h), mode=mode)
    return batch, h, w
