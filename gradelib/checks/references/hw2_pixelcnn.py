"""Reference implementation of the graded API of ``hw2_pixelcnn``: the colour PixelCNN.

Instructor side only: the hidden checks of :mod:`gradelib.checks.hw2_pixelcnn` compare the
student's code with these functions. Never imported by the book or by student-facing
``gradelib`` modules, never shipped in the student kit.

The colour PixelCNN of van den Oord et al. (2016, "Pixel Recurrent Neural Networks",
Section 3.4 and Figure 2) models an RGB image with the chain rule over its ``3 * H * W``
dimensions, pixels in raster order and, within a pixel, R then G then B:

    p(x) = prod_i p(x_{i,R} | x_{<i}) p(x_{i,G} | x_{<i}, x_{i,R}) p(x_{i,B} | x_{<i}, x_{i,R}, x_{i,G}).

Every feature map is split into three equal groups of channels, R, G and B. A masked
kernel keeps, spatially, the taps strictly before the centre in raster order (for every
channel pair), and at the centre tap lets output group ``g`` see input group ``g'`` only if
``g' < g`` (mask "A", the first layer, whose input groups are the image's colour channels
themselves) or ``g' <= g`` (mask "B", every later layer, whose group ``g`` at pixel ``i``
already summarises only allowed inputs). The output logit of channel ``c`` at pixel ``i``
then depends on input ``(c', j)`` only if ``j < i``, or ``j = i`` and ``c' < c``.

Units: binary data, Bernoulli conditionals; negative log-likelihoods in bits per dimension,
``nats / (3 * H * W * ln 2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradelib.pixelcnn import causal_mask
from gradelib.validation import (
    require_generator,
    require_binary,
    require_choice,
    require_positive_int,
    require_same_shape,
    require_shape,
    require_tensor,
)

__all__ = [
    "MASK_TYPES",
    "colour_causal_mask",
    "ColourMaskedConv2d",
    "ColourPixelCNNConfig",
    "ColourPixelCNN",
    "bits_per_dim",
    "sample",
]

MASK_TYPES = ("A", "B")
NUM_COLOURS = 3


def _require_groups(name: str, value: object) -> int:
    require_positive_int(name, value)
    if value % NUM_COLOURS:  # type: ignore[operator]
        raise ValueError(f"{name} must be divisible by 3 (equal R, G, B groups), got {value}")
    return value  # type: ignore[return-value]


def _groups(channels: int) -> torch.Tensor:
    """The colour group (0 = R, 1 = G, 2 = B) of each of ``channels`` channels: contiguous
    thirds, channel ``i`` in group ``i // (channels / 3)``."""
    return torch.arange(channels) // (channels // NUM_COLOURS)  # (channels,)


def colour_causal_mask(
    kernel_size: int, mask_type: str, in_channels: int, out_channels: int
) -> torch.Tensor:
    """The 0/1 mask of a colour masked convolution (van den Oord et al., 2016, §3.4, Fig. 2).

    With centre ``m = kernel_size // 2``: every tap strictly before the centre in raster order
    (rows ``u < m``; columns ``v < m`` of row ``m``) is 1.0 for every channel pair, as in the
    one-channel mask; taps after the centre are 0.0. At the centre ``(m, m)`` the channels are
    split into three contiguous equal groups R, G, B (channel ``i`` of ``C`` in group
    ``i // (C / 3)``), and output group ``g`` sees input group ``g'`` when ``g' < g`` (type
    ``"A"``) or ``g' <= g`` (type ``"B"``).

    Args:
        kernel_size: ``k``, a positive odd int.
        mask_type: ``"A"`` (the first layer, on the image) or ``"B"`` (every later layer).
        in_channels, out_channels: positive ints divisible by 3.

    Returns:
        float32 tensor ``(out_channels, in_channels, k, k)`` of 0.0 and 1.0 (the layout of
        ``nn.Conv2d.weight``).

    Raises:
        TypeError: a size is not an int.
        ValueError: a size is not positive, a channel count not divisible by 3, the kernel
            size even, or ``mask_type`` not ``"A"``/``"B"``.
    """
    require_choice("mask_type", mask_type, MASK_TYPES)
    _require_groups("in_channels", in_channels)
    _require_groups("out_channels", out_channels)
    mask = causal_mask(kernel_size, "A", in_channels, out_channels)  # (out, in, k, k), centre 0
    centre = kernel_size // 2
    g_out = _groups(out_channels)[:, None]  # (out, 1)
    g_in = _groups(in_channels)[None, :]  # (1, in)
    sees = g_in < g_out if mask_type == "A" else g_in <= g_out  # (out, in)
    mask[:, :, centre, centre] = sees.to(torch.float32)
    return mask


class ColourMaskedConv2d(nn.Conv2d):
    """A 2-D convolution whose kernel is multiplied by :func:`colour_causal_mask` in forward.

    The mask is a buffer (moves with the module, saved in ``state_dict``); padding defaults to
    ``kernel_size // 2`` so that output pixel ``(r, c)`` is aligned with input pixel ``(r, c)``
    and the image keeps its size.

    Args:
        mask_type: ``"A"`` or ``"B"``.
        in_channels, out_channels: divisible by 3.
        kernel_size: a positive odd int.
        **conv_kwargs: passed to ``nn.Conv2d`` (``bias``, ``padding``, ...).

    Raises:
        TypeError / ValueError: as :func:`colour_causal_mask`.
    """

    def __init__(self, mask_type: str, in_channels: int, out_channels: int, kernel_size: int,
                 **conv_kwargs):
        mask = colour_causal_mask(kernel_size, mask_type, in_channels, out_channels)
        conv_kwargs.setdefault("padding", kernel_size // 2)
        super().__init__(in_channels, out_channels, kernel_size, **conv_kwargs)
        self.mask_type = mask_type
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W) -> (B, out_channels, H, W)`` with the masked kernel."""
        return self._conv_forward(x, self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        return f"mask_type={self.mask_type!r}, " + super().extra_repr()


@dataclass(frozen=True)
class ColourPixelCNNConfig:
    """Architecture of the reference :class:`ColourPixelCNN` (the notebook's suggestion).

    Attributes:
        hidden_channels: 30 feature maps, 10 per colour group. On a CPU thread this network's
            training step costs mostly per-layer overhead, not arithmetic, so width is cheap;
            30 reaches 0.055 to 0.064 test bits/dim after the notebook's two epochs (17.5 s of
            CPU; ``benchmarks/pixelcnn.py``), and sampling 8 digits (2,352 evaluations) takes
            12.5 s of CPU.
        num_layers: 3 residual type-B 3x3 layers: with the 7x7 type-A layer the network sees
            3 + 3 = 6 rows above each pixel; each further layer adds about a third to the
            training time.
        first_kernel_size: 7, as in van den Oord et al. (2016).
        kernel_size: 3 for the type-B layers.
    """

    hidden_channels: int = 30
    num_layers: int = 3
    first_kernel_size: int = 7
    kernel_size: int = 3


class ColourPixelCNN(nn.Module):
    """A PixelCNN for binary RGB images with channel order R, G, B within each pixel.

    Layers: a type-A ``first_kernel_size`` colour masked convolution from 3 to
    ``hidden_channels`` maps; ``num_layers`` residual blocks ``h <- h + conv_B(ReLU(h))``
    (3x3 type-B colour masked convolutions); then ReLU, a 1x1 type-B colour masked
    convolution, ReLU and a 1x1 type-B colour masked convolution to 3 logits per pixel.
    The 1x1 layers are masked too: a plain 1x1 convolution would mix the colour groups of one
    pixel and let R see B.

    Args:
        config: :class:`ColourPixelCNNConfig`.

    ``forward(x)``: ``(B, 3, H, W)`` in {0, 1} (any ``H, W``) to logits ``(B, 3, H, W)``;
    ``sigmoid(logits[b, c, r, s])`` is ``p(x[b, c, r, s] = 1 | earlier pixels, earlier
    channels of pixel (r, s))``.
    """

    def __init__(self, config: ColourPixelCNNConfig = ColourPixelCNNConfig()):
        super().__init__()
        hidden = _require_groups("config.hidden_channels", config.hidden_channels)
        self.config = config
        self.first = ColourMaskedConv2d("A", NUM_COLOURS, hidden, config.first_kernel_size)
        self.layers = nn.ModuleList(
            ColourMaskedConv2d("B", hidden, hidden, config.kernel_size)
            for _ in range(config.num_layers)
        )
        self.head = nn.Sequential(
            nn.ReLU(), ColourMaskedConv2d("B", hidden, hidden, 1), nn.ReLU(),
            ColourMaskedConv2d("B", hidden, NUM_COLOURS, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` binary images to ``(B, 3, H, W)`` Bernoulli logits.

        Raises:
            TypeError / ValueError: ``x`` is not a floating ``(B, 3, H, W)`` tensor.
        """
        require_tensor("x", x, ndim=4, floating=True)
        require_shape("x", x, (None, NUM_COLOURS, None, None))
        h = self.first(x)  # (B, C, H, W)
        for layer in self.layers:
            h = h + layer(F.relu(h))  # (B, C, H, W)
        return self.head(h)  # (B, 3, H, W)


def bits_per_dim(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli negative log-likelihood of binary RGB images in bits per dimension.

    ``sum over (c, r, s) of [softplus(l) - x * l] / (3 * H * W * ln 2)``: the binary
    cross-entropy of each of the ``3 * H * W`` dimensions (every channel of every pixel)
    against ``sigmoid(logits)``, summed over the image, in nats, converted to bits (``/ ln 2``)
    and averaged over the dimensions (van den Oord et al., 2016, Section 5.1 report
    likelihoods this way). Stable for large logits.

    Args:
        logits: ``(B, 3, H, W)`` floating.
        x: ``(B, 3, H, W)`` floating in {0, 1}, the shape of ``logits``.

    Returns:
        ``(B,)``: bits per dimension of each image, in the dtype of ``logits``.

    Raises:
        TypeError / ValueError: not floating ``(B, 3, H, W)`` tensors of one shape, or ``x``
            not binary.
    """
    require_tensor("logits", logits, ndim=4, floating=True)
    require_tensor("x", x, ndim=4, floating=True)
    require_shape("logits", logits, (None, NUM_COLOURS, None, None))
    require_same_shape("logits", logits, "x", x)
    require_binary("x", x)
    nats = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=(1, 2, 3))
    num_dims = x[0].numel()  # 3 * H * W
    return nats / (num_dims * math.log(2.0))  # (B,)


@torch.no_grad()
def sample(model: nn.Module, n: int, height: int, width: int,
           generator: torch.Generator) -> torch.Tensor:
    """Ancestral sampling: pixels in raster order and, within a pixel, R, then G, then B.

    Starting from an all-zero canvas ``x`` of shape ``(n, 3, height, width)``: for each row
    ``r``, each column ``s``, each channel ``c`` in 0 (R), 1 (G), 2 (B): ``logits =
    model(x)``, ``p = sigmoid(logits[:, c, r, s])``, ``u = torch.rand(n, generator=generator)``,
    ``x[:, c, r, s] = (u < p)``. That is ``3 * height * width`` network evaluations and as many
    draws of ``n`` uniforms, in this order, all from ``generator`` (van den Oord et al., 2016,
    Section 3.4: the network is evaluated again after each channel, because G depends on the
    R just drawn). The model is evaluated in eval mode, restored afterwards.

    Args:
        model: maps ``(n, 3, height, width)`` to logits of the same shape.
        n, height, width: positive ints.
        generator: a CPU ``torch.Generator``, the only source of randomness.

    Returns:
        float32 ``(n, 3, height, width)`` in {0, 1}.

    Raises:
        TypeError / ValueError: bad sizes, ``generator`` not a ``torch.Generator``, or model
            outputs of the wrong shape.
    """
    require_positive_int("n", n)
    require_positive_int("height", height)
    require_positive_int("width", width)
    require_generator("generator", generator)
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(n, NUM_COLOURS, height, width)
        for r in range(height):
            for s in range(width):
                for c in range(NUM_COLOURS):
                    logits = model(x)
                    require_shape("model(x)", logits, tuple(x.shape))
                    p = torch.sigmoid(logits[:, c, r, s])  # (n,)
                    u = torch.rand(n, generator=generator)
                    x[:, c, r, s] = (u < p).to(x.dtype)
    finally:
        model.train(was_training)
    return x
