"""Batch normalisation over the real steps of a padded batch.

The convolutional nets that lead on small series sets (FCN, ResNet, InceptionTime)
normalise each channel by batch statistics; torch's ``BatchNorm1d`` would count
padded steps in them, so a sample's embedding would depend on how much padding its
batch carried. Here padded steps neither enter the statistics nor receive them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedBatchNorm(nn.Module):
    """Per-channel batch statistics over real steps while training; their running averages in eval mode.

    In eval mode a sample embeds exactly as it would alone, as every other
    embedding does; in training the statistics are the batch's, as in any BatchNorm.
    Without padding (fixed-length series, the common case) and in eval mode this is
    torch's own ``batch_norm``: one fused pass forward and one back, where the same
    statistics taken op by op make several, on the stem's largest activations.
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor, keep: Tensor | None) -> Tensor:
        """x (B, C, T), as Conv1d writes it; keep (B, 1, T) with 1 at real steps, or None when every step is real."""
        if keep is None or not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                training=self.training, momentum=self.momentum, eps=self.eps)
        mean, var = self._masked_statistics(x, keep)
        shape = (1, -1, 1)
        scale = torch.rsqrt(var + self.eps) * self.weight
        return ((x - mean.view(shape)) * scale.view(shape) + self.bias.view(shape)).to(x.dtype)  # as batch_norm

    def _masked_statistics(self, x: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
        stats, keep = x.float(), keep.float()
        count = keep.sum().clamp(min=1)  # every channel sees the same real steps
        mean = (stats * keep).sum((0, 2)) / count
        var = (((stats - mean[:, None]) * keep) ** 2).sum((0, 2)) / count
        with torch.no_grad():  # running variance unbiased, as torch's BatchNorm keeps it
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * count / (count - 1).clamp(min=1), self.momentum)
        return mean.to(x.dtype), var.to(x.dtype)
