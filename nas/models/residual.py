"""The pre-norm residual wrapper every token mixer and feed-forward sits in.

It has a module of its own because both the topologies (``nas.models.topologies``)
and the block (``nas.models.blocks``) need it, and the block builds its mixer by
asking the topology registry: kept in ``blocks.py`` it would make an import cycle.
"""

from __future__ import annotations

from torch import Tensor, nn


class Residual(nn.Module):
    """x + dropout(module(norm(x))): the pre-norm residual wrapper."""

    def __init__(self, d_model: int, module: nn.Module, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.module = module
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # (B, T, D) -> (B, T, D)
        return x + self.dropout(self.module(self.norm(x), mask))


__all__ = ["Residual"]
