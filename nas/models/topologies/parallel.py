"""Parallel branches over the same input, merged by sum, concat + projection, or a per-token gate."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from nas.models.residual import Residual
from nas.models.topologies import register_topology
from nas.models.topologies.base import Topology, build_attention

if TYPE_CHECKING:
    from nas.models.topologies.base import MixerSpec


class Parallel(nn.Module):
    """Branches read the same input; outputs merge by sum, concat + projection, or a per-token gate.

    The gate is a softmax over branches computed from each token, so a token can
    lean on local attention while its neighbour leans on global attention.
    """

    def __init__(self, branches: list[nn.Module], merge: str, d_model: int):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.merge = merge
        if merge == "concat":
            self.project = nn.Linear(len(branches) * d_model, d_model)
        elif merge == "gate":
            self.gate = nn.Linear(d_model, len(branches))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # (B, T, D) -> (B, T, D)
        outs = [branch(x, mask) for branch in self.branches]
        if self.merge == "sum":
            return torch.stack(outs).sum(0)
        if self.merge == "concat":
            return self.project(torch.cat(outs, dim=-1))  # (B, T, n * D) -> (B, T, D)
        weights = torch.softmax(self.gate(x), dim=-1)  # (B, T, n): each token picks its own mix
        return torch.einsum("nbtd,btn->btd", torch.stack(outs), weights)


@register_topology("parallel")
class ParallelTopology(Topology):
    merges = ("sum", "concat", "gate")

    def build(self, spec: MixerSpec, d_model: int, position: str, dropout: float) -> nn.Module:
        branches = [build_attention(b, d_model, position, dropout) for b in spec.branches]
        return Residual(d_model, Parallel(branches, spec.merge, d_model), dropout)
