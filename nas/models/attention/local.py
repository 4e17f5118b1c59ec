"""Local (sliding-window) attention: dot-product restricted to keys within +-window positions."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nas.models.attention.dot import DotAttention, DotScore
from nas.models.attention.registry import register_attention

# Outside the band in *fused* scores: finite, so a zero mixing weight cancels it
# exactly instead of producing 0 * -inf = NaN, yet exp(-1e4) underflows to 0.
OUTSIDE_WINDOW = -1e4


def band(length: int, window: int, device: torch.device) -> Tensor:
    """(T, T) bool, True where |i - j| <= window."""
    pos = torch.arange(length, device=device)
    return (pos[None, :] - pos[:, None]).abs() <= window


class LocalScore(DotScore):
    def __init__(self, head_dim: int, window: int):
        super().__init__(head_dim)
        self.window = window

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        scores = super().forward(q, k)
        inside = band(q.shape[-2], self.window, q.device)
        return scores.masked_fill(~inside, OUTSIDE_WINDOW)

    def allowed(self, length: int, device: torch.device) -> Tensor:
        return band(length, self.window, device)


@register_attention("local")
class LocalAttention(DotAttention):
    """The band is a boolean mask on the fused SDPA kernel, so padding and window cost one mask."""

    windowed = True

    @classmethod
    def make_scorer(cls, heads: int, head_dim: int, window: int | None) -> nn.Module:
        return LocalScore(head_dim, window)
