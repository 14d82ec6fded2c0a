"""Autoregressive image models: masked convolutions and a PixelCNN for binarized images.

The code of the chapter *Autoregressive models and PixelCNN* (syllabus §3), one channel.
The homework ``hw2_pixelcnn`` takes the next step, the colour PixelCNN; its graded
reference lives with the checks, on the instructor's side.

An autoregressive model factorises the distribution of an image with the chain rule, in
raster order (row by row, left to right within a row), over its ``n = H * W`` pixels:

    p(x) = prod_{i=1}^{n} p(x_i | x_1, ..., x_{i-1}),

so ``log p(x)`` is an exact sum of ``n`` log-conditionals (van den Oord et al., 2016a,
Eq. 1). For binarized images each conditional is a Bernoulli distribution whose logit the
network outputs at pixel ``i``; training maximises the exact log-likelihood.

The PixelCNN (van den Oord et al., 2016a, Sections 3.4-3.5) computes all ``n`` conditionals in
one forward pass with *masked* convolutions: each kernel is multiplied by a mask that zeroes
the taps at and after the centre in raster order (type ``"A"``, used once, on the input)
or only after the centre (type ``"B"``, every later layer, where the centre already holds
information about strictly earlier pixels only). Output pixel ``i`` then depends on input
pixels ``j < i`` alone, so training is one parallel pass; sampling stays sequential,
``H * W`` network evaluations per image. Stacked masked convolutions never see a wedge of
pixels above and to the right of the current one: the *blind spot*, which the gated
PixelCNN (van den Oord et al., 2016b) removes with separate vertical and horizontal stacks.

The masks here act on one colour channel: the same spatial mask for every pair of input
and output feature channels. (Colour images also order R, G and B within a pixel,
van den Oord et al., 2016a, Section 3.4: the homework, on colour MNIST.)

Units: negative log-likelihoods are in nats per image (summed over pixels);
``bits/dim = nats / (H * W * ln 2)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

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
    "causal_mask",
    "MaskedConv2d",
    "PixelCNNConfig",
    "PixelCNN",
    "bernoulli_nll",
    "nats_to_bits_per_dim",
    "sample",
    "PixelCNNTrainingConfig",
    "train_pixelcnn",
    "evaluate_nll",
    "receptive_field",
    "jacobian_violations",
]

MASK_TYPES = ("A", "B")


def _require_odd_kernel(kernel_size: object) -> int:
    require_positive_int("kernel_size", kernel_size)
    if kernel_size % 2 == 0:  # type: ignore[operator]
        raise ValueError(
            f"kernel_size must be odd (a masked kernel needs a centre tap), got {kernel_size}"
        )
    return kernel_size  # type: ignore[return-value]


def causal_mask(
    kernel_size: int, mask_type: str, in_channels: int = 1, out_channels: int = 1
) -> torch.Tensor:
    """The 0/1 mask of a masked convolution kernel (van den Oord et al., 2016a, Section 3.4).

    With centre ``c = kernel_size // 2``, a tap ``(u, v)`` of the ``k x k`` kernel is kept
    (1.0) when it lies strictly before the centre in raster order: every row ``u < c``, and
    the columns ``v < c`` of the centre row. Type ``"B"`` also keeps the centre tap; type
    ``"A"`` does not. Taps after the centre (the rest of the centre row and every row
    below it) are 0.0. The same spatial mask is used for every (output, input) channel pair.

    Args:
        kernel_size: ``k``, a positive odd int.
        mask_type: ``"A"`` (the first layer: the centre pixel is hidden from itself) or
            ``"B"`` (later layers: the centre feature is already causal).
        in_channels: number of input feature channels, positive int.
        out_channels: number of output feature channels, positive int.

    Returns:
        float32 tensor ``(out_channels, in_channels, k, k)`` of 0.0 and 1.0, the layout of
        ``nn.Conv2d.weight``. Type A keeps ``(k*k - 1) / 2`` taps, type B one more.

    Raises:
        TypeError: a size is not an int.
        ValueError: a size is not positive, ``kernel_size`` is even, or ``mask_type`` is not
            ``"A"`` or ``"B"``.
    """
    k = _require_odd_kernel(kernel_size)
    require_choice("mask_type", mask_type, MASK_TYPES)
    require_positive_int("in_channels", in_channels)
    require_positive_int("out_channels", out_channels)
    centre = k // 2
    spatial = torch.zeros(k, k, dtype=torch.float32)
    spatial[:centre, :] = 1.0  # every row above the centre
    spatial[centre, :centre] = 1.0  # left of the centre in its row
    if mask_type == "B":
        spatial[centre, centre] = 1.0
    return spatial.expand(out_channels, in_channels, k, k).clone()  # (out, in, k, k)


class MaskedConv2d(nn.Conv2d):
    """A 2-D convolution whose kernel is multiplied by :func:`causal_mask` in every forward.

    The mask is a buffer (it moves with ``.to(device)`` and is saved in ``state_dict``);
    the weights at masked taps stay in ``self.weight`` but receive zero gradient and never
    reach the output. Padding defaults to ``dilation * (kernel_size // 2)``, so the output
    has the input's height and width and output pixel ``(r, c)`` is aligned with input
    pixel ``(r, c)``.

    Args:
        mask_type: ``"A"`` or ``"B"``.
        in_channels, out_channels: feature channels.
        kernel_size: a positive odd int (square kernels only).
        **conv_kwargs: passed to ``nn.Conv2d`` (``bias``, ``dilation``, ``padding_mode``,
            ``device``, ``dtype``, ...).

    Raises:
        TypeError / ValueError: as :func:`causal_mask`; ValueError if ``stride`` or
            ``groups`` is not 1 or ``padding`` does not preserve the image size, since
            pixel-to-pixel causality would no longer hold.
    """

    def __init__(
        self, mask_type: str, in_channels: int, out_channels: int, kernel_size: int, **conv_kwargs
    ):
        mask = causal_mask(kernel_size, mask_type, in_channels, out_channels)
        dilation = conv_kwargs.get("dilation", 1)
        conv_kwargs.setdefault("padding", dilation * (kernel_size // 2))
        super().__init__(in_channels, out_channels, kernel_size, **conv_kwargs)
        if self.stride != (1, 1) or self.groups != 1:
            raise ValueError(
                f"MaskedConv2d needs stride=1 and groups=1, got stride={self.stride}, "
                f"groups={self.groups}"
            )
        same = tuple(d * (kernel_size // 2) for d in self.dilation)
        if self.padding != same:
            raise ValueError(
                f"padding must be {same} to keep output pixel (r, c) aligned with input pixel "
                f"(r, c), got {self.padding}"
            )
        self.mask_type = mask_type
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W) -> (B, out_channels, H, W)`` with the masked kernel."""
        return self._conv_forward(x, self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        return f"mask_type={self.mask_type!r}, " + super().extra_repr()


@dataclass(frozen=True)
class PixelCNNConfig:
    """Architecture of the reference :class:`PixelCNN`.

    Attributes:
        hidden_channels: 32 feature maps: wide enough to reach the course's likelihood bar on
            embedded MNIST, small enough that a training epoch takes seconds on a 2-core CPU
            and sampling 16 digits (784 network evaluations) stays under 20 s.
        num_layers: 6 residual type-B layers. With the 7x7 first layer the network sees
            3 + 6 = 9 rows above each pixel, a third of a digit, which is where the test
            likelihood stops improving at this width.
        first_kernel_size: 7, as in van den Oord et al. (2016a): the type-A layer alone
            already sees the three rows above and three pixels to the left.
        kernel_size: 3 for the type-B layers (the paper's choice); each layer widens the
            receptive field by one row and one column on each causal side.
    """

    hidden_channels: int = 32
    num_layers: int = 6
    first_kernel_size: int = 7
    kernel_size: int = 3


class PixelCNN(nn.Module):
    """A PixelCNN for one-channel binarized images (van den Oord et al., 2016a, Section 3.5).

    Layers: a type-A ``first_kernel_size`` masked convolution from 1 to ``hidden_channels``
    maps; ``num_layers`` residual blocks ``h <- h + MaskedConv2d_B(ReLU(h))``; then
    ReLU, a 1x1 convolution, ReLU and a 1x1 convolution to one logit per pixel. The 1x1
    layers mix channels at a single pixel, so they keep causality.

    Args:
        config: the architecture, :class:`PixelCNNConfig`.

    ``forward(x)`` takes ``(B, 1, H, W)`` images with values in {0, 1} (any ``H, W``) and
    returns ``(B, 1, H, W)`` logits: ``sigmoid(logits[b, 0, r, c])`` is
    ``p(x[b, 0, r, c] = 1 | pixels before (r, c) in raster order)``, and it does not depend
    on ``x[b, 0, r, c]`` or any later pixel.

    Attributes:
        context_rows: how many rows above pixel ``(r, c)`` its logit can depend on,
            ``first_kernel_size // 2 + num_layers * (kernel_size // 2)``; :func:`sample` uses
            it to evaluate only the rows that matter.
    """

    def __init__(self, config: PixelCNNConfig = PixelCNNConfig()):
        super().__init__()
        if not isinstance(config, PixelCNNConfig):
            raise TypeError(f"config must be a PixelCNNConfig, got {type(config).__name__}")
        hidden = require_positive_int("config.hidden_channels", config.hidden_channels)
        num_layers = config.num_layers
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"config.num_layers must be an int >= 0, got {num_layers!r}")
        self.config = config
        self.first = MaskedConv2d("A", 1, hidden, config.first_kernel_size)
        self.layers = nn.ModuleList(
            MaskedConv2d("B", hidden, hidden, config.kernel_size) for _ in range(num_layers)
        )
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 1, 1)
        )
        # Rows above a pixel that its logit can see: each masked layer reaches k // 2 rows up.
        self.context_rows = config.first_kernel_size // 2 + num_layers * (config.kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` binarized images to ``(B, 1, H, W)`` Bernoulli logits.

        Raises:
            TypeError / ValueError: ``x`` is not a floating ``(B, 1, H, W)`` tensor.
        """
        require_tensor("x", x, ndim=4, floating=True)
        require_shape("x", x, (None, 1, None, None))
        h = self.first(x)  # (B, C, H, W)
        for layer in self.layers:
            h = h + layer(F.relu(h))  # (B, C, H, W)
        return self.head(h)  # (B, 1, H, W)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of binarized images under per-pixel Bernoulli logits, in nats.

    ``-log p(x) = sum_pixels [softplus(l) - x * l]`` with ``l`` the logits, i.e. the binary
    cross-entropy of ``x`` against ``sigmoid(l)`` summed over every pixel (and channel) of
    each image, computed stably from the logits. For a PixelCNN's logits this is the exact
    ``-log p(x)`` of the chain rule (van den Oord et al., 2016a, Eq. 1).

    Args:
        logits: ``(B, C, H, W)`` floating.
        x: ``(B, C, H, W)`` floating with values in {0, 1}, same shape as ``logits``.

    Returns:
        ``(B,)`` tensor: nats per image, summed over ``C * H * W`` pixels (not averaged),
        differentiable in ``logits``.

    Raises:
        TypeError / ValueError: not floating 4-D tensors, shapes differ, or ``x`` not binary.
    """
    require_tensor("logits", logits, ndim=4, floating=True)
    require_tensor("x", x, ndim=4, floating=True)
    require_same_shape("logits", logits, "x", x)
    require_binary("x", x)
    per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return per_pixel.sum(dim=(1, 2, 3))  # (B,)


def nats_to_bits_per_dim(nats: torch.Tensor | float, num_dims: int) -> torch.Tensor:
    """Convert a negative log-likelihood per image in nats to bits per dimension.

    ``bits/dim = nats / (num_dims * ln 2)``: divide by ``ln 2`` to change the logarithm's
    base from e to 2, and by the number of dimensions (pixels, ``H * W`` for a one-channel
    image) to compare images of different sizes. Elementwise.

    Args:
        nats: a floating tensor of any shape, or a Python float/int.
        num_dims: positive int, the number of dimensions of one data point (784 for MNIST).

    Returns:
        A tensor of the shape of ``nats`` (0-d for a Python number; float32 then).

    Raises:
        TypeError: ``nats`` is neither a floating tensor nor a number; ``num_dims`` not an int.
        ValueError: ``num_dims`` is not positive.
    """
    if isinstance(nats, (int, float)) and not isinstance(nats, bool):
        nats = torch.tensor(float(nats))
    require_tensor("nats", nats, floating=True)
    require_positive_int("num_dims", num_dims)
    return nats / (num_dims * math.log(2.0))


def _model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return fallback


@torch.no_grad()
def sample(
    model: nn.Module, n: int, height: int, width: int, generator: torch.Generator
) -> torch.Tensor:
    """Draw ``n`` images from an autoregressive model, one pixel at a time in raster order.

    Starting from an all-zero canvas, for each pixel ``(r, c)`` in raster order: evaluate
    ``model`` on the canvas, take ``p = sigmoid(logits[:, 0, r, c])``, draw
    ``u ~ U[0, 1)`` of shape ``(n,)`` from ``generator`` (on the CPU for a CPU generator) and
    set the pixel to ``1.0`` where ``u < p``. Pixels not yet drawn are 0 when the model sees
    them, which a causal model ignores. This is ancestral sampling from the chain rule:
    ``height * width`` network evaluations (van den Oord et al., 2016a, Section 2).
    The model is put in eval mode for the duration and restored afterwards.

    Speed-up for models that declare their context (:class:`PixelCNN` does): if ``model`` has
    an int attribute ``context_rows``, the logits of row ``r`` are computed on rows
    ``max(0, r - context_rows) .. r`` of the canvas only. A convolutional causal model's
    logits in row ``r`` depend on no other rows, so the conditionals are the same (up to
    floating-point rounding) at about a third of the cost on 28x28 digits.

    Args:
        model: maps ``(n, 1, height, width)`` in {0, 1} to logits of the same shape.
        n: number of images, positive int.
        height, width: image size, positive ints.
        generator: the only source of randomness; same seed, same images.

    Returns:
        float32 tensor ``(n, 1, height, width)`` with values in {0, 1}, on the model's device.

    Raises:
        TypeError / ValueError: bad sizes, ``generator`` not a ``torch.Generator``, or the
            model's output has the wrong shape.
    """
    require_positive_int("n", n)
    require_positive_int("height", height)
    require_positive_int("width", width)
    require_generator("generator", generator)
    device = _model_device(model, generator.device)
    context = getattr(model, "context_rows", None)
    use_context = isinstance(context, int) and not isinstance(context, bool) and context >= 0
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(n, 1, height, width, device=device)
        for row in range(height):
            top = max(0, row - context) if use_context else 0
            for col in range(width):
                window = x[:, :, top : row + 1] if use_context else x  # (n, 1, rows, W)
                logits = model(window)
                require_shape("model(x)", logits, tuple(window.shape))
                p = torch.sigmoid(logits[:, 0, row - top, col].float())  # (n,)
                u = torch.rand(n, generator=generator, device=generator.device)
                x[:, 0, row, col] = (u.to(device) < p).to(x.dtype)
    finally:
        model.train(was_training)
    return x


@dataclass(frozen=True)
class PixelCNNTrainingConfig:
    """How :func:`train_pixelcnn` optimises the exact negative log-likelihood.

    Attributes:
        batch_size: 64 images, about 63 Adam steps per epoch on the 4,000 embedded digits:
            more steps per second of CPU than larger batches, with gradients still smooth.
        learning_rate: 2e-3, twice Adam's default: this small residual network trains
            stably with it and reaches the likelihood bar in fewer epochs.
    """

    batch_size: int = 64
    learning_rate: float = 2e-3


def train_pixelcnn(
    model: nn.Module,
    train_images: torch.Tensor,
    epochs: int,
    generator: torch.Generator,
    *,
    config: PixelCNNTrainingConfig = PixelCNNTrainingConfig(),
    progress: bool = False,
    callback: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Maximum-likelihood training: minimise the batch mean of :func:`bernoulli_nll` with Adam.

    Each epoch visits every image once in an order drawn from ``generator``.

    Args:
        model: maps ``(B, 1, H, W)`` to logits of the same shape; trained in place on the
            device of its parameters.
        train_images: ``(N, 1, H, W)`` float32 in {0, 1}.
        epochs: number of passes over the data, positive int.
        generator: a CPU ``torch.Generator`` for the shuffling.
        config: batch size and learning rate.
        progress: show a tqdm progress bar over epochs (``tqdm.auto``: a widget in
            notebooks, text on a terminal, nothing when the output is redirected).
        callback: called as ``callback(epoch, mean_train_nll)`` after each epoch (epochs
            count from 1), e.g. to evaluate or time the model; the model is in training mode
            again when it returns.

    Returns:
        Per-epoch mean training NLL in nats per image, ``len == epochs``.

    Raises:
        TypeError / ValueError: bad ``train_images``, ``epochs`` or ``generator``.
    """
    require_tensor("train_images", train_images, ndim=4, floating=True)
    require_shape("train_images", train_images, (None, 1, None, None))
    require_binary("train_images", train_images)
    require_positive_int("epochs", epochs)
    require_generator("generator", generator)
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    n = len(train_images)
    history: list[float] = []
    model.train()
    # disable=None: no bar when the output is a file or pipe; a widget in notebooks.
    bar = tqdm(range(epochs), desc="PixelCNN epochs", disable=None if progress else True)
    for _ in bar:
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, config.batch_size):
            batch = train_images[order[start : start + config.batch_size]].to(device)
            loss = bernoulli_nll(model(batch), batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        history.append(total / n)
        bar.set_postfix(nll=f"{history[-1]:.1f}")
        if callback is not None:
            callback(len(history), history[-1])
            model.train()
    model.eval()
    return history


@torch.no_grad()
def evaluate_nll(model: nn.Module, images: torch.Tensor, *, batch_size: int = 250) -> torch.Tensor:
    """Exact test negative log-likelihood of each image, in nats: ``(N,)`` float32 on the CPU.

    Runs ``model`` in eval mode on batches of ``batch_size`` and applies :func:`bernoulli_nll`.

    Raises:
        TypeError / ValueError: ``images`` is not ``(N, 1, H, W)`` floating in {0, 1}.
    """
    require_tensor("images", images, ndim=4, floating=True)
    require_shape("images", images, (None, 1, None, None))
    require_positive_int("batch_size", batch_size)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        parts = [
            bernoulli_nll(model(images[s : s + batch_size].to(device)),
                          images[s : s + batch_size].to(device)).float().cpu()
            for s in range(0, len(images), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(parts)  # (N,)


def receptive_field(
    kernel_sizes: Sequence[int], height: int, width: int, row: int, col: int
) -> torch.Tensor:
    """Which input pixels can influence output pixel ``(row, col)`` of a stack of masked convs.

    The stack is a type-A convolution with ``kernel_sizes[0]`` followed by type-B
    convolutions with the remaining sizes (the layout of :class:`PixelCNN`; 1x1 layers and
    residual connections add no new pixels). The influence is computed exactly: the stack is
    rebuilt with one channel, all-ones weights, no bias and no nonlinearity, so every path
    contributes a positive amount and the gradient of output ``(row, col)`` with respect to
    the input counts the paths from each input pixel. The pixels above and to the right that
    get zero form the *blind spot* (van den Oord et al., 2016b, Section 2.2).

    Args:
        kernel_sizes: odd kernel sizes, first the type-A layer.
        height, width: image size.
        row, col: the output pixel, ``0 <= row < height``, ``0 <= col < width``.

    Returns:
        float64 tensor ``(height, width)``: the number of paths from each input pixel to the
        output pixel (zero outside the receptive field, always zero at and after
        ``(row, col)`` in raster order).

    Raises:
        TypeError / ValueError: bad sizes, an even kernel size, or the pixel outside the image.
    """
    if len(kernel_sizes) == 0:
        raise ValueError("kernel_sizes must hold at least one kernel size, got []")
    require_positive_int("height", height)
    require_positive_int("width", width)
    for name, value, limit in (("row", row, height), ("col", col, width)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
            raise ValueError(f"{name} must be an int in [0, {limit - 1}], got {value!r}")
    x = torch.zeros(1, 1, height, width, dtype=torch.float64, requires_grad=True)
    h = x
    for index, k in enumerate(kernel_sizes):
        kernel = causal_mask(k, "A" if index == 0 else "B").to(torch.float64)  # (1, 1, k, k)
        h = F.conv2d(h, kernel, padding=k // 2)  # (1, 1, H, W)
    (grad,) = torch.autograd.grad(h[0, 0, row, col], x)
    return grad[0, 0]  # (H, W)


def _jacobian_rows(model: nn.Module, x: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """``d logits[0, 0, p] / d x[0, 0, :]`` for flat pixel indices ``p``: ``(len(pixels), H*W)``.

    One batch element per output pixel (the input repeated), so one backward pass gives
    the rows; the model must treat batch elements independently (eval mode).
    """
    _, _, height, width = x.shape
    inputs = x.repeat(len(pixels), 1, 1, 1).requires_grad_(True)  # (P, 1, H, W)
    logits = model(inputs)
    flat = logits.reshape(len(pixels), -1)  # (P, H*W)
    picked = flat[torch.arange(len(pixels)), pixels]  # (P,)
    (grad,) = torch.autograd.grad(picked.sum(), inputs, allow_unused=True)
    if grad is None:  # the output does not depend on the input at all
        return torch.zeros(len(pixels), height * width)
    return grad.reshape(len(pixels), height * width)  # (P, H*W)


def jacobian_violations(
    model: nn.Module, x: torch.Tensor, *, chunk: int = 196
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Jacobian of a one-channel model's logits with respect to one image, and its
    non-causal part (the chapter's verification of Proposition "masked PixelCNN is causal").

    Args:
        model: maps ``(B, 1, H, W)`` to ``(B, 1, H, W)``; called in eval mode (restored after).
        x: one image ``(1, 1, H, W)``.
        chunk: output pixels per backward pass (memory vs speed).

    Returns:
        ``(jacobian, violations)``: ``jacobian[i, j] = d logit_i / d x_j`` (float64,
        ``(H*W, H*W)``, raster order) and a bool mask of the entries with ``j >= i`` that
        are not exactly 0.0.

    Raises:
        TypeError / ValueError: ``x`` is not a floating ``(1, 1, H, W)`` tensor.
    """
    require_tensor("x", x, ndim=4, floating=True)
    require_shape("x", x, (1, 1, None, None))
    require_positive_int("chunk", chunk)
    n = x.shape[-2] * x.shape[-1]
    was_training = model.training
    model.eval()
    try:
        rows = [
            _jacobian_rows(model, x, torch.arange(s, min(s + chunk, n))).detach()
            for s in range(0, n, chunk)
        ]
    finally:
        model.train(was_training)
    jacobian = torch.cat(rows).to(torch.float64)  # (H*W, H*W)
    future = torch.ones(n, n, dtype=torch.bool).triu()  # j >= i
    return jacobian, future & (jacobian != 0)
