"""Attention modules one after another, each in its own pre-norm residual."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from nas.models.residual import Residual
from nas.models.topologies import register_topology
from nas.models.topologies.base import Topology, build_attention

if TYPE_CHECKING:
    from nas.models.topologies.base import MixerSpec


class Serial(nn.Module):
    """Each stage reads the previous one's output; a residual and norm per stage keep a deep stack trainable."""

    def __init__(self, stages: list[Residual]):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # (B, T, D) -> (B, T, D)
        for stage in self.stages:
            x = stage(x, mask)
        return x


@register_topology("serial")
class SerialTopology(Topology):
    def build(self, spec: MixerSpec, d_model: int, position: str, dropout: float) -> nn.Module:
        modules = [build_attention(b, d_model, position, dropout) for b in spec.branches]
        return Serial([Residual(d_model, m, dropout) for m in modules])
