"""Cosine attention: normalised q and k, scaled by a learned per-head temperature (Swin V2)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.models.attention.base import SoftmaxAttention
from nas.models.attention.registry import register_attention

MAX_LOGIT_SCALE = math.log(100.0)  # keeps the temperature from collapsing the softmax


class CosineScore(nn.Module):
    def __init__(self, heads: int):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0)))

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        scale = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        return F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1) * scale


@register_attention("cosine")
class CosineAttention(SoftmaxAttention):
    @classmethod
    def make_scorer(cls, heads: int, head_dim: int, window: int | None) -> nn.Module:
        return CosineScore(heads)
