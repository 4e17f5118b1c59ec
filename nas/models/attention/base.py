"""What every attention family shares: projections, heads, positions and masking.

A family is a *scorer* (how a query rates a key) plugged into
:class:`SoftmaxAttention`; keeping the scorer apart from the projections is
what lets the ``fused`` topology mix several scorers over one set of values.
Shapes: B batch, T tokens, D model width, H heads, KV key/value heads, hd head size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.models.positions import alibi_bias, alibi_slopes, apply_rotary


class Attention(nn.Module, ABC):
    """Base of every family: ``(B, T, D)`` plus an optional mask -> ``(B, T, D)``.

    ``mask`` is bool ``(B, T)``, True at real tokens; padded keys never receive
    weight, so whatever sits at padded positions cannot change real outputs.
    Class flags tell the spec what the family can be combined with.
    """

    name: ClassVar[str]
    scored: ClassVar[bool] = True  # yields a score matrix: can be fused, takes ALiBi
    rotary: ClassVar[bool] = True  # scores are dot products, so rotary positions apply
    windowed: ClassVar[bool] = False  # takes a ``window``

    def __init__(
        self,
        d_model: int,
        heads: int = 1,
        kv_heads: int | None = None,
        window: int | None = None,
        position: str = "none",
        dropout: float = 0.0,
    ):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"heads={heads} must divide d_model={d_model}")
        kv_heads = heads if kv_heads is None else kv_heads
        if heads % kv_heads:
            raise ValueError(f"kv_heads={kv_heads} must divide heads={heads}")
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, d_model // heads
        self.position = position
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, heads * self.head_dim)
        self.kv_proj = nn.Linear(d_model, 2 * kv_heads * self.head_dim)
        self.out_proj = nn.Linear(d_model, d_model)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q (B, H, T, hd); k, v (B, KV, T, hd); rotary already applied."""
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv_proj(x).view(b, t, 2, self.kv_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.position == "rotary":
            q, k = apply_rotary(q), apply_rotary(k)
        return q, k, v

    def expand_kv(self, t: Tensor) -> Tensor:
        """Repeat grouped key/value heads so each query head has its own: (B, KV, T, hd) -> (B, H, T, hd)."""
        groups = self.heads // self.kv_heads
        return t if groups == 1 else t.repeat_interleave(groups, dim=1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        q, k, v = self.project(x)
        out = self.attend(q, k, v, mask)  # (B, H, T, hd)
        return self.out_proj(out.transpose(1, 2).reshape(x.shape))

    @abstractmethod
    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """Called by ``forward`` after projection: (B, H, T, hd) values read by each query."""


class SoftmaxAttention(Attention):
    """Attention that normalises a score matrix with softmax: every scored family."""

    def __init__(self, d_model: int, heads: int = 1, kv_heads: int | None = None,
                 window: int | None = None, position: str = "none", dropout: float = 0.0):
        super().__init__(d_model, heads, kv_heads, window, position, dropout)
        self.scorer = self.make_scorer(heads, self.head_dim, window)
        if position == "alibi":
            self.register_buffer("slopes", alibi_slopes(heads), persistent=False)

    @classmethod
    @abstractmethod
    def make_scorer(cls, heads: int, head_dim: int, window: int | None) -> nn.Module:
        """The module mapping q (B, H, T, hd), k (B, H, T, hd) to scores (B, H, T, T).

        Called once per module at construction, and by the ``fused`` topology,
        which mixes several families' scorers over one set of projections.
        """

    def allowed(self, length: int, device: torch.device) -> Tensor | None:
        """Which (query, key) pairs may attend at all, (T, T) bool; None means all."""
        return getattr(self.scorer, "allowed", lambda *_: None)(length, device)

    def bias(self, length: int, dtype: torch.dtype) -> Tensor | None:
        return alibi_bias(self.slopes, length).to(dtype) if self.position == "alibi" else None

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        weights = self.weights_from(q, k, mask)
        weights = F.dropout(weights, self.dropout, self.training)
        return weights @ self.expand_kv(v)

    def weights_from(self, q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
        """Attention distribution (B, H, T, T) over keys, the explicit O(T^2) way."""
        scores = self.scorer(q, self.expand_kv(k))
        length = q.shape[-2]
        bias = self.bias(length, scores.dtype)
        if bias is not None:
            scores = scores + bias
        allowed = combined_mask(self.allowed(length, q.device), mask)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        return torch.softmax(scores.float(), dim=-1).to(q.dtype)

    @torch.no_grad()
    def attention_weights(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The attention map (B, H, T, T) this module applies to ``x``: for plots and inspection."""
        q, k, _ = self.project(x)
        return self.weights_from(q, k, mask)


def combined_mask(allowed: Tensor | None, mask: Tensor | None) -> Tensor | None:
    """(B or 1, 1, T, T) bool of pairs that may attend, never leaving a query row empty.

    A row can only be empty for a padded query whose window holds no real key;
    its output is never read, so letting it see every key keeps softmax finite.
    """
    if allowed is None and mask is None:
        return None
    out = allowed[None, None] if allowed is not None else None
    if mask is not None:
        keys = mask[:, None, None, :]
        out = keys if out is None else out & keys
    empty = ~out.any(dim=-1, keepdim=True)
    return out | empty
