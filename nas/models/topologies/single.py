"""One attention module in a pre-norm residual: the Transformer's own mixer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from nas.models.residual import Residual
from nas.models.topologies import register_topology
from nas.models.topologies.base import Topology, build_attention

if TYPE_CHECKING:
    from nas.models.topologies.base import MixerSpec


@register_topology("single")
class SingleTopology(Topology):
    min_branches = max_branches = 1

    def build(self, spec: MixerSpec, d_model: int, position: str, dropout: float) -> nn.Module:
        return Residual(d_model, build_attention(spec.branches[0], d_model, position, dropout), dropout)
