"""Batch normalisation over the real steps of a padded batch.

The convolutional nets that lead on small series sets (FCN, ResNet, InceptionTime)
normalise each channel by batch statistics; torch's ``BatchNorm1d`` would count
padded steps in them, so a sample's embedding would depend on how much padding its
batch carried. Here padded steps neither enter the statistics nor receive them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MaskedBatchNorm(nn.Module):
    """Per-channel batch statistics over real steps while training; their running averages in eval mode.

    In eval mode a sample embeds exactly as it would alone, as every other
    embedding does; in training the statistics are the batch's, as in any BatchNorm.
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor, keep: Tensor | None) -> Tensor:
        """x (B, T, C), keep (B, T, 1) with 1 at real steps, or None when every step is real."""
        if self.training:
            mean, var = self._batch_statistics(x, keep)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias

    def _batch_statistics(self, x: Tensor, keep: Tensor | None) -> tuple[Tensor, Tensor]:
        stats = x.float()
        if keep is None:  # fixed-length series, the common case: no mask to multiply in
            count = torch.tensor(float(stats.shape[0] * stats.shape[1]), device=x.device)
            var, mean = torch.var_mean(stats, dim=(0, 1), correction=0)
        else:
            keep = keep.float()
            count = keep.sum().clamp(min=1)
            mean = (stats * keep).sum((0, 1)) / count
            var = (((stats - mean) * keep) ** 2).sum((0, 1)) / count
        with torch.no_grad():  # running variance unbiased, as torch's BatchNorm keeps it
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * count / (count - 1).clamp(min=1), self.momentum)
        return mean.to(x.dtype), var.to(x.dtype)
