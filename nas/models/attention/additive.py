"""Bahdanau's additive attention: score = v . tanh(W q + U k), per head.

W and U are the module's query and key projections, so per head the score is
``energy_h . tanh(q_i + k_j)``. The (B, H, Tq, Tk, hd) tensor inside the tanh is
never built whole: queries go in chunks, and under autograd each chunk is
recomputed in backward (activation checkpointing), so memory stays bounded by
one chunk plus the (B, H, T, T) scores every softmax attention needs anyway.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from nas.models.attention.base import SoftmaxAttention
from nas.models.attention.registry import register_attention

# 64 MiB of float32 per chunk of the tanh tensor. Above glibc's 32 MiB cap on its
# dynamic mmap threshold, so each chunk is mmapped and handed back when freed:
# 16 MiB chunks landed on the heap and fragmented it (14.8 GiB resident at 4096
# tokens, batch 2, against 1.6 GiB of live tensors).
CHUNK_ELEMENTS = 1 << 24


def _chunk_scores(q: Tensor, k: Tensor, energy: Tensor) -> Tensor:
    # q (B, H, c, hd), k (B, H, Tk, hd), energy (H, hd) -> (B, H, c, Tk)
    hidden = torch.tanh(q.unsqueeze(-2) + k.unsqueeze(-3))  # (B, H, c, Tk, hd)
    # A broadcast matmul, not einsum: einsum copies ``hidden`` into a layout of its own.
    return (hidden @ energy[:, None, :, None]).squeeze(-1)


class AdditiveScore(nn.Module):
    def __init__(self, heads: int, head_dim: int):
        super().__init__()
        self.energy = nn.Parameter(torch.randn(heads, head_dim) * head_dim**-0.5)

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        b, h, tq, hd = q.shape
        chunk = max(1, CHUNK_ELEMENTS // (b * h * k.shape[-2] * hd))
        if chunk >= tq:
            return _chunk_scores(q, k, self.energy)
        recompute = torch.is_grad_enabled()
        parts = [
            checkpoint(_chunk_scores, q[:, :, i : i + chunk], k, self.energy, use_reentrant=False)
            if recompute
            else _chunk_scores(q[:, :, i : i + chunk], k, self.energy)
            for i in range(0, tq, chunk)
        ]
        return torch.cat(parts, dim=2)


@register_attention("additive")
class AdditiveAttention(SoftmaxAttention):
    rotary = False  # no dot product between q and k, so rotation carries no relative position

    @classmethod
    def make_scorer(cls, heads: int, head_dim: int, window: int | None) -> nn.Module:
        return AdditiveScore(heads, head_dim)
