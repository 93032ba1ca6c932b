"""Figures shared by the chapters: the course style and image grids drawn with matplotlib.

Taught in: chapter 1 (image grids of digits). No torchvision: grids are plain matplotlib.
matplotlib is imported on first use, so `import vae_course` does not pay for pyplot.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.validation import check_int

__all__ = ["apply_style", "image_grid", "show_images"]

# Mid-tone colours that keep their contrast on the light and the dark theme of the site.
_STYLE = {
    "figure.dpi": 96,
    "savefig.dpi": 96,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 11,
}
_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"]


def apply_style() -> None:
    """Set the course's matplotlib defaults (white figure background so figures read on dark pages)."""
    import matplotlib as mpl

    mpl.rcParams.update(_STYLE)
    mpl.rcParams["axes.prop_cycle"] = mpl.cycler(color=_COLORS)


def image_grid(images, nrow: int = 10, side: int = 28, pad: int = 1) -> np.ndarray:
    """Tile images of shape (N, side*side) or (N, side, side) into one 2-D array, `nrow` per row."""
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.ndim == 2:
        if arr.shape[1] != side * side:
            raise ValueError(
                f"images must have shape (N, {side * side}) or (N, {side}, {side}), got {tuple(arr.shape)}"
            )
        arr = arr.reshape(-1, side, side)
    elif arr.ndim != 3:
        raise ValueError(f"images must be 2-D (N, {side * side}) or 3-D (N, {side}, {side}), got {arr.ndim}-D")
    nrow = check_int("nrow", nrow, low=1)
    n, h, w = arr.shape
    if n == 0:
        raise ValueError("images must hold at least one image, got an empty array of shape "
                         f"{tuple(arr.shape)}")
    ncol = min(nrow, n)
    nrows = int(np.ceil(n / ncol))
    grid = np.full((nrows * (h + pad) + pad, ncol * (w + pad) + pad), 0.5, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = arr[i]
    return grid


def show_images(images, nrow: int = 10, title: str | None = None, ax=None, side: int = 28):
    """Draw a grid of grayscale images in [0, 1] (ink dark on a light background). Returns the axes."""
    grid = image_grid(images, nrow=nrow, side=side)
    if ax is None:
        import matplotlib.pyplot as plt

        n = len(images)
        ncol = min(nrow, n)
        rows = int(np.ceil(n / ncol))
        _, ax = plt.subplots(figsize=(0.6 * ncol + 0.4, 0.6 * rows + 0.4))
    ax.imshow(1.0 - grid, cmap="gray", vmin=0.0, vmax=1.0)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax
