"""A short convolution over token embeddings: each token also carries its neighbours, as in H3, Hyena and Based.

Associative recall asks a model to find an earlier key and read the value beside
it. Attention alone must first learn to pass each token's neighbour along (a
two-layer circuit that forms late in training); a depthwise convolution of a few
taps hands every position its neighbours from the first step, so one attention
layer can match a key and read its value (Arora et al. 2023, "Zoology"; Fu et al.
2023, H3). Centred kernels, since the models here read both ways.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from nas.core.checks import SpecError
from nas.models.embeddings import register_embedding
from nas.models.embeddings.base import Embedding, check_default_norm, check_kernels

if TYPE_CHECKING:
    from nas.data.spec import InputSpec
    from nas.models.embeddings.base import EmbeddingSpec

MAX_LAYERS = 3


@register_embedding("shortconv")
class ShortConvEmbedding(Embedding):
    """Token table, then per kernel a residual depthwise Conv1d (zero same-length padding) over the tokens.

    Padded positions are zeroed before every convolution, so what they hold never
    reaches a real token: a padded sequence embeds exactly as it would alone.
    """

    tokens = True
    steps = False
    per_token = True

    def __init__(self, spec: EmbeddingSpec, input_spec: InputSpec, d_model: int, patch: int):
        super().__init__(spec, input_spec, d_model, patch)
        self.embed = nn.Embedding(input_spec.vocab, d_model)
        self.convs = nn.ModuleList(nn.Conv1d(d_model, d_model, k, padding=k // 2, groups=d_model)
                                   for k in spec.kernels)

    @classmethod
    def check(cls, spec: EmbeddingSpec) -> None:
        check_kernels("shortconv", spec.kernels, MAX_LAYERS)
        if spec.channels is not None:
            raise SpecError(f"channels={spec.channels} is not allowed for embedding 'shortconv', whose depthwise "
                            "convolutions keep d_model channels")
        check_default_norm("shortconv", spec)

    @classmethod
    def summary(cls, spec: EmbeddingSpec) -> str:
        return "stem=shortconv" + "-".join(str(k) for k in spec.kernels)

    def forward(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        h = self.embed(x)  # (B, T) ids -> (B, T, D)
        keep = None if mask is None else mask[..., None].to(h.dtype)
        for conv in self.convs:
            if keep is not None:
                h = h * keep
            h = h + conv(h.transpose(1, 2)).transpose(1, 2)  # (B, D, T) for Conv1d, then back
        return h, mask
