"""Train-time augmentation of series: on a set of tens of series a model memorises every one within a few hundred
steps, and random changes that leave the class alone (its amplitude, small noise, where its window starts) keep it
learning the shape.

``scale_jitter_slice`` multiplies each series (each channel apart) by a log-normal factor, adds noise at a twentieth
of its spread, and stretches a random window of nine tenths of it back to its length (window slicing, Le Guennec
et al. 2016; the transforms the surveys list as safe for classification, Um et al. 2017, Iwana and Uchida 2021).
A padded series is sliced within its own length, so padding stays where the mask says. It suits models that read
local shapes (a convolutional stem); one that reads fixed positions may lose by it, which is why a space that
lists it leaves the choice to each candidate. Only whole series with a class are augmented: a regression target
may depend on the amplitude, and token ids are no series.
"""

from __future__ import annotations

import torch
from torch import Tensor

AUGMENTS = ("none", "scale_jitter_slice")
SCALE_SIGMA = 0.2  # log-normal amplitude factor: about 0.67 to 1.5 at two standard deviations
JITTER = 0.05  # noise, as a share of each series' standard deviation
SLICE = 0.9  # share of a series' length the window keeps


def augment(name: str, x: Tensor, mask: Tensor | None, generator: torch.Generator) -> Tensor:
    """``x`` (batch, steps, channels) changed by ``name``, with every random draw from ``generator`` (a CPU
    generator: the same seed gives the same batches on every device)."""
    if name == "none":
        return x
    if name not in AUGMENTS:
        raise ValueError(f"augment={name!r} is unknown; allowed: {', '.join(AUGMENTS)}")
    if x.ndim != 3 or not x.is_floating_point():
        raise ValueError(f"augment={name!r} changes series of numbers (batch, steps, channels); these inputs are "
                         f"{x.dtype} of shape {tuple(x.shape)}: use augment='none'")
    batch, steps, channels = x.shape
    lengths = torch.full((batch,), steps) if mask is None else mask.sum(1).cpu().clamp(min=1)
    real = torch.ones(batch, steps, 1) if mask is None else mask.cpu()[:, :, None].float()
    scale = torch.exp(SCALE_SIGMA * torch.randn(batch, 1, channels, generator=generator))
    noise = torch.randn(batch, steps, channels, generator=generator) * real
    start = torch.rand(batch, generator=generator) * (1 - SLICE) * (lengths - 1)
    x = _stretch(x, start, lengths)
    spread = x.std(dim=1, keepdim=True)
    return (x + JITTER * spread * noise.to(x.device, x.dtype)) * scale.to(x.device, x.dtype)


def _stretch(x: Tensor, start: Tensor, lengths: Tensor) -> Tensor:
    """Each series' window of ``SLICE`` of its length from ``start``, linearly resampled to its whole length."""
    steps, channels = x.shape[1], x.shape[2]
    position = torch.arange(steps, dtype=torch.float32)[None, :]
    span = (SLICE * (lengths - 1)).float()[:, None]
    source = start[:, None] + position * span / (lengths - 1).clamp(min=1).float()[:, None]
    source = torch.where(position < lengths[:, None], source, position)  # padding stays put
    low = source.floor().long().clamp(max=steps - 1)
    high = (low + 1).clamp(max=steps - 1)
    weight = (source - low.float())[:, :, None].to(x.device, x.dtype)

    def at(index: Tensor) -> Tensor:
        return x.gather(1, index.to(x.device)[:, :, None].expand(-1, -1, channels))

    return at(low) * (1 - weight) + at(high) * weight


__all__ = ["AUGMENTS", "JITTER", "SCALE_SIGMA", "SLICE", "augment"]
