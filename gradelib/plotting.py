"""Plotting helpers for the book and the homework, on matplotlib and torchvision's make_grid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch

from gradelib.validation import require_tensor

__all__ = ["show_images", "plot_loss_curves", "plot_points_2d"]


def show_images(
    images: torch.Tensor,
    *,
    nrow: int = 8,
    title: str | None = None,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Draw a batch of images as one grid (``torchvision.utils.make_grid``).

    Args:
        images: ``(B, C, H, W)`` with values in [0, 1] (C = 1 or 3); values are clamped.
        nrow: images per row.
        title: the axes' title.
        ax: where to draw; a new figure if None.

    Raises:
        TypeError / ValueError: ``images`` is not a 4-D floating tensor.
    """
    require_tensor("images", images, ndim=4, floating=True)
    from torchvision.utils import make_grid  # here: torchvision's import costs ~1.5 s, paid only to plot

    grid = make_grid(images.detach().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    if ax is None:
        _, ax = plt.subplots(figsize=(nrow * 0.7, max(1, (len(images) + nrow - 1) // nrow) * 0.7))
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray", vmin=0, vmax=1)  # (H', W', C)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def plot_loss_curves(
    curves: Mapping[str, Sequence[float]],
    *,
    xlabel: str = "epoch",
    ylabel: str = "loss",
    title: str | None = None,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Plot named loss histories against their index (one line per entry of ``curves``)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), list(values), label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend()
    return ax


def plot_points_2d(
    points: torch.Tensor,
    *,
    centers: torch.Tensor | None = None,
    title: str | None = None,
    ax: plt.Axes | None = None,
    s: float = 2.0,
) -> plt.Axes:
    """Scatter ``(N, 2)`` points, with optional ``(K, 2)`` mode centres marked as crosses."""
    require_tensor("points", points, ndim=2, floating=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.5, 3.5))
    p = points.detach().cpu()
    ax.scatter(p[:, 0], p[:, 1], s=s, alpha=0.5)
    if centers is not None:
        c = centers.detach().cpu()
        ax.scatter(c[:, 0], c[:, 1], marker="x", color="black", s=30)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax
