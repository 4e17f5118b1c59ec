"""Luong's general attention: score = q W k^T, one learned W per head."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nas.models.attention.base import SoftmaxAttention
from nas.models.attention.registry import register_attention


class GeneralScore(nn.Module):
    def __init__(self, heads: int, head_dim: int):
        super().__init__()
        # Identity start: the module begins as dot-product and learns a bilinear form from there.
        self.weight = nn.Parameter(torch.eye(head_dim).repeat(heads, 1, 1))  # (H, hd, hd)
        self.scale = head_dim**-0.5

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        return (q @ self.weight) @ k.transpose(-2, -1) * self.scale


@register_attention("general")
class GeneralAttention(SoftmaxAttention):
    @classmethod
    def make_scorer(cls, heads: int, head_dim: int, window: int | None) -> nn.Module:
        return GeneralScore(heads, head_dim)
