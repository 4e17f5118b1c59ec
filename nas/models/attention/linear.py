"""Linear (kernelised) attention of Katharopoulos et al.: phi(q) (phi(K)^T V), phi = elu + 1.

Cost is O(T hd^2) instead of O(T^2 hd): there is no score matrix, which is why
it cannot be fused with the scored families and takes no ALiBi or rotary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nas.models.attention.base import Attention
from nas.models.attention.registry import register_attention

EPS = 1e-6


def feature_map(x: Tensor) -> Tensor:
    return F.elu(x) + 1.0


@register_attention("linear")
class LinearAttention(Attention):
    scored = False
    rotary = False

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        q, k = feature_map(q), feature_map(k)
        if mask is not None:  # a padded key contributes nothing to either sum
            k = k * mask[:, None, :, None].to(k.dtype)
        k, v = self.expand_kv(k), self.expand_kv(v)
        kv = torch.einsum("bhtd,bhte->bhde", k, v)  # (B, H, hd, hd)
        normaliser = torch.einsum("bhtd,bhd->bht", q, k.sum(dim=2)).unsqueeze(-1)  # (B, H, T, 1)
        out = (q @ kv) / normaliser.clamp_min(EPS)
        return F.dropout(out, self.dropout, self.training)

    @torch.no_grad()
    def attention_weights(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The (B, H, T, T) weights linear attention implicitly applies, built explicitly for plots."""
        q, k, _ = self.project(x)
        q, k = feature_map(q), self.expand_kv(feature_map(k))
        if mask is not None:
            k = k * mask[:, None, :, None].to(k.dtype)
        weights = q @ k.transpose(-2, -1)
        return weights / weights.sum(-1, keepdim=True).clamp_min(EPS)
