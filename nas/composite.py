"""Topologies of a block's token mixer, and the block itself.

Every mixer maps ``(B, T, D)`` plus mask to ``(B, T, D)`` *including* its
residual path, because ``serial`` needs a residual and a norm per module while
the others need one around the whole mixer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.attention import Attention, SoftmaxAttention, get_attention
from nas.spec import AttentionSpec, BlockSpec, MixerSpec


def build_attention(spec: AttentionSpec, d_model: int, position: str, dropout: float) -> Attention:
    family = get_attention(spec.type)
    return family(d_model, spec.heads, spec.kv_heads, spec.window, position, dropout)


class Residual(nn.Module):
    """x + dropout(module(norm(x))): the pre-norm residual wrapper."""

    def __init__(self, d_model: int, module: nn.Module, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.module = module
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return x + self.dropout(self.module(self.norm(x), mask))


class Parallel(nn.Module):
    """Branches read the same input; outputs merge by sum, concat + projection, or a per-token gate."""

    def __init__(self, branches: list[nn.Module], merge: str, d_model: int):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.merge = merge
        if merge == "concat":
            self.project = nn.Linear(len(branches) * d_model, d_model)
        elif merge == "gate":
            self.gate = nn.Linear(d_model, len(branches))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        outs = [branch(x, mask) for branch in self.branches]
        if self.merge == "sum":
            return torch.stack(outs).sum(0)
        if self.merge == "concat":
            return self.project(torch.cat(outs, dim=-1))
        weights = torch.softmax(self.gate(x), dim=-1)  # (B, T, n): each token picks its own mix
        return torch.einsum("nbtd,btn->btd", torch.stack(outs), weights)


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

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        weights = torch.softmax(self.mix_logits, dim=0).to(q.dtype)
        return sum(w * scorer(q, k) for w, scorer in zip(weights, self.scorers))


class FusedAttention(SoftmaxAttention):
    """Several scoring functions fused into ONE attention distribution per head, over one set of values."""

    def __init__(self, d_model: int, scorers: list[AttentionSpec], position: str, dropout: float):
        first = scorers[0]
        self._scorer_specs = scorers
        super().__init__(d_model, first.heads, first.kv_heads, None, position, dropout)

    def make_scorer(self, heads: int, head_dim: int, window: int | None) -> nn.Module:  # type: ignore[override]
        parts = [get_attention(s.type).make_scorer(heads, head_dim, s.window) for s in self._scorer_specs]
        return MixedScore(parts, heads)


class FeedForward(nn.Module):
    def __init__(self, d_model: int, mult: int, activation: str, dropout: float):
        super().__init__()
        hidden = mult * d_model
        self.activation = activation
        # SwiGLU's gate doubles the first projection; Shazeer (2020).
        self.up = nn.Linear(d_model, 2 * hidden if activation == "swiglu" else hidden)
        self.down = nn.Linear(hidden, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = self.up(x)
        if self.activation == "swiglu":
            value, gate = h.chunk(2, dim=-1)
            h = value * F.silu(gate)
        else:
            h = F.gelu(h) if self.activation == "gelu" else F.relu(h)
        return self.down(self.dropout(h))


def build_mixer(spec: MixerSpec, d_model: int, position: str, dropout: float) -> nn.Module:
    """The token mixer of one block, residual path included (see module docstring)."""
    if spec.topology == "fused":
        return Residual(d_model, FusedAttention(d_model, list(spec.branches), position, dropout), dropout)
    modules = [build_attention(b, d_model, position, dropout) for b in spec.branches]
    if spec.topology == "single":
        return Residual(d_model, modules[0], dropout)
    if spec.topology == "parallel":
        return Residual(d_model, Parallel(modules, spec.merge, d_model), dropout)
    return Serial([Residual(d_model, m, dropout) for m in modules])


class Serial(nn.Module):
    """Attention modules one after another, each with its own residual and norm."""

    def __init__(self, stages: list[Residual]):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for stage in self.stages:
            x = stage(x, mask)
        return x


class Block(nn.Module):
    """Token mixer, then a pre-norm residual feed-forward."""

    def __init__(self, spec: BlockSpec, d_model: int, position: str, dropout: float):
        super().__init__()
        self.mixer = build_mixer(spec.mixer, d_model, position, dropout)
        self.ff = Residual(d_model, FeedForward(d_model, spec.ff_mult, spec.activation, dropout), dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.ff(self.mixer(x, mask))

    def attention_modules(self) -> list[Attention]:
        return [m for m in self.mixer.modules() if isinstance(m, Attention)]
