"""Scaled dot-product attention on PyTorch's fused kernel (flash / memory-efficient / math)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from nas.models.attention.base import SoftmaxAttention, combined_mask
from nas.models.attention.registry import register_attention


class DotScore(nn.Module):
    """softmax(q k^T / sqrt(hd)): the Transformer's scorer."""

    def __init__(self, head_dim: int):
        super().__init__()
        self.scale = head_dim**-0.5

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        return (q @ k.transpose(-2, -1)) * self.scale


@register_attention("dot")
class DotAttention(SoftmaxAttention):
    """Never materialises the score matrix when no mask or bias is needed (flash path)."""

    @classmethod
    def make_scorer(cls, heads: int, head_dim: int, window: int | None) -> nn.Module:
        return DotScore(head_dim)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        length = q.shape[-2]
        attn_mask = combined_mask(self.allowed(length, q.device), mask)
        bias = self.bias(length, q.dtype)
        if bias is not None:  # ALiBi: a float mask carries both the bias and the -inf of padding
            attn_mask = bias[None] if attn_mask is None else bias[None].masked_fill(~attn_mask, float("-inf"))
        return F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=self.kv_heads != self.heads,
        )
