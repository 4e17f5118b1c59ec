"""The model people reach for first: ``torch.nn.TransformerEncoder`` with a linear or embedding input.

Baselines import this, nothing of ``nas`` beyond the data's shape, so what they
measure is the stock PyTorch model. Continuous series may be cut into patches of
``patch`` steps, as any time-series transformer does, so long series stay short.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class TransformerClassifier(nn.Module):
    """Input projection, learned positions, ``nn.TransformerEncoder`` (pre-norm), masked mean pooling, linear head.

    ``forward(x, mask)`` takes the same tensors as the searched models: ``x`` is
    (batch, seq, features) floats or (batch, seq) token ids, ``mask`` is True at
    real steps or None.
    """

    def __init__(self, seq_len: int, num_outputs: int, features: int = 0, vocab: int = 0, d_model: int = 64,
                 heads: int = 4, layers: int = 2, ff_mult: int = 4, dropout: float = 0.1, patch: int = 1):
        super().__init__()
        self.patch = patch
        self.embed = nn.Embedding(vocab, d_model) if vocab else nn.Linear(features * patch, d_model)
        self.position = nn.Parameter(torch.zeros(math.ceil(seq_len / patch), d_model))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff_mult * d_model, dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.head = nn.Linear(d_model, num_outputs)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if x.is_floating_point() and mask is not None:
            x = x * mask.unsqueeze(-1).to(x.dtype)  # padded steps must not leak into a patch with real ones
        if x.is_floating_point() and self.patch > 1:
            b, t, f = x.shape
            pad = (-t) % self.patch
            x = nn.functional.pad(x, (0, 0, 0, pad)).reshape(b, -1, self.patch * f)
            if mask is not None:
                mask = nn.functional.pad(mask, (0, pad)).reshape(b, -1, self.patch).any(-1)
        h = self.embed(x) + self.position[: x.shape[1]]
        h = self.encoder(h, src_key_padding_mask=None if mask is None else ~mask)
        if mask is None:
            return self.head(h.mean(1))
        weights = mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * weights).sum(1) / weights.sum(1).clamp(min=1))


def from_input_spec(input_spec, **sizes) -> TransformerClassifier:
    """The baseline for data shaped like a task's ``input_spec`` (seq_len, num_outputs, features or vocab)."""
    return TransformerClassifier(input_spec.seq_len, input_spec.num_outputs, input_spec.features, input_spec.vocab,
                                 **sizes)
