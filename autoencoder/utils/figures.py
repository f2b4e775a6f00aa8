"""Figures drawn on `matplotlib.figure.Figure` objects directly: no pyplot state, so importing this
module leaves the caller's matplotlib backend alone."""

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure


def latent_scatter(codes: torch.Tensor, labels: torch.Tensor, title: str, class_names: Sequence[str], axes: tuple[str, str] = ("z[0]", "z[1]")) -> Figure:
    """A scatter of 2-D points (latent codes or a 2-D map of them), one colour per class, the
    colour bar naming the classes."""
    k = len(class_names)
    figure = Figure(figsize=(6.5, 5))
    ax = figure.subplots()
    cmap = "tab10" if k <= 10 else "tab20" if k <= 20 else "viridis"
    points = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap=cmap, s=3, vmin=-0.5, vmax=k - 0.5)
    bar = figure.colorbar(points, ax=ax, ticks=range(k), label="class")
    bar.ax.set_yticklabels(class_names)
    ax.set(xlabel=axes[0], ylabel=axes[1], title=title)
    figure.tight_layout()
    return figure


def psnr_plot(rows: list[dict]) -> Figure:
    """Test PSNR against noise, one panel per corruption: noisy input, classical filter, autoencoder."""
    names = list(dict.fromkeys(r["corruption"] for r in rows))
    figure = Figure(figsize=(4.5 * len(names), 3.8))
    axes = figure.subplots(1, len(names), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names, strict=True):
        mine = [r for r in rows if r["corruption"] == name]
        for key, label in (("psnr_noisy_db", "noisy input"), ("psnr_filter_db", "classical filter"), ("psnr_autoencoder_db", "autoencoder")):
            ax.plot([r["noise"] for r in mine], [r[key] for r in mine], marker="o", label=label)
        ax.set(title=name, xlabel="noise", ylabel="test PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    figure.tight_layout()
    return figure


def _show(ax, image: torch.Tensor, title: str) -> None:
    """An image (C, H, W) in [0, 1] on `ax`, gray if it has one channel."""
    pixels = image.permute(1, 2, 0).clamp(0, 1).numpy()  # (H, W, C)
    ax.imshow(pixels[..., 0] if pixels.shape[-1] == 1 else pixels, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=8)


def restoration_grid(examples: Sequence[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]], transforms: Sequence[str]) -> Figure:
    """For each (name, image (C, H, W), its transforms (T, C, H, W), their restorations (T, C, H, W)):
    a row with the image and its transforms (named by `transforms`), and below them the
    restorations with their MSE. A model restores only what it has learnt to expect, so a normal
    image's row is restored, an anomaly's is not."""
    count = len(examples[0][2])
    figure = Figure(figsize=(1.6 * (count + 1), 3.4 * len(examples)))
    axes = figure.subplots(2 * len(examples), count + 1, squeeze=False)
    for top, bottom, (name, image, inputs, restorations) in zip(axes[::2], axes[1::2], examples, strict=True):
        _show(top[0], image, name)
        for upper, lower, t, r, what in zip(top[1:], bottom[1:], inputs, restorations, transforms, strict=True):
            _show(upper, t, what)
            _show(lower, r, f"MSE {(r - image).square().mean():.4f}")
    for ax in axes.flat:
        ax.axis("off")
    figure.tight_layout()
    return figure
