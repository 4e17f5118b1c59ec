"""Several scoring functions fused into ONE attention distribution per head, over one set of values.

Unlike ``parallel``, which runs whole attention modules side by side, ``fused``
shares the projections and mixes the scorers' matrices before the softmax; that
is why every branch must be a scored family with the same heads and kv_heads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from nas.core.checks import SpecError
from nas.models.attention import SoftmaxAttention, attention_names, get_attention
from nas.models.residual import Residual
from nas.models.topologies import register_topology
from nas.models.topologies.base import Topology

if TYPE_CHECKING:
    from nas.models.topologies.base import AttentionSpec, MixerSpec


class MixedScore(nn.Module):
    """Convex mix of several scorers' matrices, with learned weights per head.

    The weights are a softmax over scorers, so a mix is a distribution you can
    read off (``fused 70% dot + 30% cosine``), and all weight on one scorer
    reproduces that scorer exactly.
    """

    def __init__(self, scorers: list[nn.Module], heads: int):
        super().__init__()
        self.scorers = nn.ModuleList(scorers)
        self.mix_logits = nn.Parameter(torch.zeros(len(scorers), heads, 1, 1))

    def forward(self, q: Tensor, k: Tensor) -> Tensor:  # (B, H, T, hd) x2 -> (B, H, T, T)
        weights = torch.softmax(self.mix_logits, dim=0).to(q.dtype)
        return sum(w * scorer(q, k) for w, scorer in zip(weights, self.scorers))


class FusedAttention(SoftmaxAttention):
    """One set of q, k, v projections whose scorer is a :class:`MixedScore` of every branch's scorer."""

    def __init__(self, d_model: int, scorers: list[AttentionSpec], position: str, dropout: float):
        first = scorers[0]
        self._scorer_specs = scorers
        super().__init__(d_model, first.heads, first.kv_heads, None, position, dropout)

    def make_scorer(self, heads: int, head_dim: int, window: int | None) -> nn.Module:  # type: ignore[override]
        parts = [get_attention(s.type).make_scorer(heads, head_dim, s.window) for s in self._scorer_specs]
        return MixedScore(parts, heads)


def fusable_types() -> tuple[str, ...]:
    """Attention types with a score matrix, which is what fusing mixes."""
    return tuple(n for n in attention_names() if get_attention(n).scored)


@register_topology("fused")
class FusedTopology(Topology):
    def check(self, spec: MixerSpec) -> None:
        for branch in spec.branches:
            if not get_attention(branch.type).scored:
                raise SpecError(
                    f"{branch.type!r} attention has no score matrix and cannot be fused; "
                    f"fusable types: {', '.join(fusable_types())}"
                )
        shapes = {(b.heads, b.kv) for b in spec.branches}
        if len(shapes) > 1:
            raise SpecError(
                "fused scorers mix into one distribution per head, so all need the same "
                f"heads and kv_heads, got {sorted(shapes)}"
            )

    def build(self, spec: MixerSpec, d_model: int, position: str, dropout: float) -> nn.Module:
        return Residual(d_model, FusedAttention(d_model, list(spec.branches), position, dropout), dropout)
