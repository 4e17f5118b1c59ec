"""A block: its token mixer, built by the topology registry, then a pre-norm residual feed-forward.

Every mixer maps ``(B, T, D)`` plus mask to ``(B, T, D)`` *including* its
residual path, because ``serial`` needs a residual and a norm per module while
the others need one around the whole mixer; so the block adds none around it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor, nn

from nas.models.attention import Attention
from nas.models.residual import Residual
from nas.models.topologies import get_topology

if TYPE_CHECKING:
    from nas.models.spec import BlockSpec


class FeedForward(nn.Module):
    def __init__(self, d_model: int, mult: int, activation: str, dropout: float):
        super().__init__()
        hidden = mult * d_model
        self.activation = activation
        # SwiGLU's gate doubles the first projection; Shazeer (2020).
        self.up = nn.Linear(d_model, 2 * hidden if activation == "swiglu" else hidden)
        self.down = nn.Linear(hidden, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # (B, T, D) -> (B, T, D)
        h = self.up(x)
        if self.activation == "swiglu":
            value, gate = h.chunk(2, dim=-1)
            h = value * F.silu(gate)
        else:
            h = F.gelu(h) if self.activation == "gelu" else F.relu(h)
        return self.down(self.dropout(h))


class Block(nn.Module):
    """Token mixer, then a pre-norm residual feed-forward."""

    def __init__(self, spec: BlockSpec, d_model: int, position: str, dropout: float):
        super().__init__()
        self.mixer = get_topology(spec.mixer.topology).build(spec.mixer, d_model, position, dropout)
        self.ff = Residual(d_model, FeedForward(d_model, spec.ff_mult, spec.activation, dropout), dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # (B, T, D) -> (B, T, D)
        return self.ff(self.mixer(x, mask))

    def attention_modules(self) -> list[Attention]:
        return [m for m in self.mixer.modules() if isinstance(m, Attention)]


__all__ = ["Block", "FeedForward", "Residual"]  # Residual lives in residual.py; importable here as before
