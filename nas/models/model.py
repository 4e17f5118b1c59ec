"""The whole composite model, and ``build_model``: the one factory from spec to ``nn.Module``."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nas.data.spec import InputSpec
from nas.models.blocks import Block
from nas.models.embeddings import check_input, get_embedding
from nas.models.positions import AddedPosition, sinusoidal_table
from nas.models.spec import ArchSpec


class Readout(nn.Module):
    """Pools (B, T, D) to (B, D): masked mean, the first token, or a learned query attending over tokens."""

    def __init__(self, kind: str, d_model: int):
        super().__init__()
        self.kind = kind
        if kind == "attention":
            self.query = nn.Parameter(torch.randn(d_model) * d_model**-0.5)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if self.kind == "first":
            return x[:, 0]
        if self.kind == "mean":
            if mask is None:
                return x.mean(1)
            weights = mask.to(x.dtype)[..., None]
            return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        scores = x @ self.query.to(x.dtype) / math.sqrt(x.shape[-1])  # (B, T)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return torch.einsum("bt,btd->bd", torch.softmax(scores.float(), -1).to(x.dtype), x)


class BottleneckDecoder(nn.Module):
    """(B, D) to (B, T, D): the last position's state plus a fixed position signal, through a two-layer MLP.

    MAD's compression autoencoder decodes this way, so the blocks must pack the
    whole sequence into that one state.
    """

    def __init__(self, tokens: int, d_model: int):
        super().__init__()
        self.register_buffer("positions", sinusoidal_table(tokens, d_model), persistent=False)
        self.mlp = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, d_model), nn.GELU(),
                                 nn.LayerNorm(d_model), nn.Linear(d_model, d_model), nn.GELU())

    def forward(self, state: Tensor) -> Tensor:
        return self.mlp(state[:, None, :] + self.positions.to(state.dtype))


class CompositeModel(nn.Module):
    """Embedding (by registry lookup), position, blocks, final norm, readout and head.

    ``forward(x, mask)`` takes x as (B, T, features) floats or (B, T) token ids
    and mask as (B, T) bool, True at real steps; it returns (B, outputs), or
    (B, T, outputs) for per-token tasks (decoded from the last token alone when
    the task asks for a bottleneck).
    """

    def __init__(self, spec: ArchSpec, input_spec: InputSpec):
        super().__init__()
        self.spec, self.input_spec = spec, input_spec
        self.embedding = get_embedding(spec.embedding.type)(spec.embedding, input_spec, spec.d_model, spec.patch)
        tokens = math.ceil(input_spec.seq_len / spec.patch)  # every embedding keeps the length, then patches it
        self.position = AddedPosition(spec.position, tokens, spec.d_model)
        self.dropout = nn.Dropout(spec.dropout)
        self.blocks = nn.ModuleList(Block(b, spec.d_model, spec.position, spec.dropout) for b in spec.blocks)
        self.norm = nn.LayerNorm(spec.d_model)
        self.readout = None if input_spec.per_token else Readout(spec.readout, spec.d_model)
        self.decoder = BottleneckDecoder(tokens, spec.d_model) if input_spec.bottleneck else None
        self.head = nn.Linear(spec.d_model, input_spec.num_outputs)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h, mask = self.embedding(x, mask)
        h = self.dropout(self.position(h))
        for block in self.blocks:
            h = block(h, mask)
        h = self.norm(h)
        if self.decoder is not None:
            last = h[:, -1] if mask is None else h[torch.arange(len(h), device=h.device), mask.sum(1) - 1]
            return self.head(self.decoder(last))  # the last real token: padding comes at the end
        return self.head(h if self.readout is None else self.readout(h, mask))


def build_model(spec: ArchSpec, input_spec: InputSpec, seed: int | None = None) -> CompositeModel:
    """Build the model ``spec`` describes for data shaped like ``input_spec``.

    With ``seed`` the initial weights depend on nothing else (the global RNG is
    left as it was), so the same spec and seed give identical parameters.

    >>> model = build_model(spec, InputSpec(seq_len=8, features=8, num_outputs=10), seed=0)
    """
    check_input(spec.embedding, input_spec, spec.patch)
    if seed is None:
        return CompositeModel(spec, input_spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CompositeModel(spec, input_spec)
