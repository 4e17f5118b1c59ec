"""The default embedding: continuous steps grouped into patches and projected linearly, or a table of token ids.

Patching is how time-series transformers keep long series short: OSULeaf's 427
steps become 54 tokens at ``patch=8``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from nas.core.checks import SpecError
from nas.models.embeddings import register_embedding
from nas.models.embeddings.base import Embedding, check_default_norm, patches

if TYPE_CHECKING:
    from nas.data.spec import InputSpec
    from nas.models.embeddings.base import EmbeddingSpec


@register_embedding("linear")
class LinearEmbedding(Embedding):
    tokens = True
    per_token = True

    def __init__(self, spec: EmbeddingSpec, input_spec: InputSpec, d_model: int, patch: int):
        super().__init__(spec, input_spec, d_model, patch)
        self.patch = patch
        if input_spec.kind == "tokens":
            self.embed: nn.Module = nn.Embedding(input_spec.vocab, d_model)
        else:
            self.embed = nn.Linear(patch * input_spec.features, d_model)

    @classmethod
    def check(cls, spec: EmbeddingSpec) -> None:
        if spec.kernels:
            raise SpecError(f"kernels={spec.kernels} is not allowed for embedding 'linear', which has no convolution")
        if spec.channels is not None:
            raise SpecError(f"channels={spec.channels} is not allowed for embedding 'linear', which has no convolution")
        check_default_norm("linear", spec)

    def forward(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if isinstance(self.embed, nn.Embedding):
            return self.embed(x), mask  # (B, T) ids -> (B, T, D)
        x, mask = patches(x, mask, self.patch)  # (B, T', patch * F)
        return self.embed(x), mask  # (B, T', D)
