"""A convolutional stem: 1-3 same-length Conv1d layers over time, then patches projected to d_model.

Attention models that do well on small time-series sets embed with convolutions
(ConvTran, Foumani et al. 2024; the Encoder of Serrà et al. 2018): a kernel sees a
few neighbouring steps, so each token carries a local shape (a slope, a peak)
that a linear patch of raw values would leave attention to discover from little data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor, nn

from nas.core.checks import check_choice, check_int
from nas.models.embeddings import register_embedding
from nas.models.embeddings.base import Embedding, check_kernels, patches
from nas.models.embeddings.batch_norm import MaskedBatchNorm

if TYPE_CHECKING:
    from nas.data.spec import InputSpec
    from nas.models.embeddings.base import EmbeddingSpec

MAX_LAYERS = 3
NORMS = ("layer", "batch")


@register_embedding("conv")
class ConvStem(Embedding):
    """Each layer: Conv1d (zero same-length padding) -> norm -> GELU.

    Padded steps are zeroed before every convolution, so what the padding holds
    never reaches a real step through a kernel: a padded sample embeds exactly as
    it would alone (in training too with ``norm="layer"``; in eval mode with
    ``"batch"``). ``norm`` is ``layer``, per step over channels, or ``batch``, per
    channel over the batch's real steps as in FCN and ResNet, whose stems lead on
    small series sets. ``channels`` is the stem's width; None means d_model.
    """

    def __init__(self, spec: EmbeddingSpec, input_spec: InputSpec, d_model: int, patch: int):
        super().__init__(spec, input_spec, d_model, patch)
        self.patch = patch
        width = spec.channels or d_model
        sizes = [input_spec.features] + [width] * len(spec.kernels)
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, c_out, k, padding=k // 2) for c_in, c_out, k in zip(sizes, sizes[1:], spec.kernels)
        )
        self.batch_norm = spec.norm == "batch"
        self.norms = nn.ModuleList(MaskedBatchNorm(width) if self.batch_norm else nn.LayerNorm(width)
                                   for _ in spec.kernels)
        self.project = nn.Linear(patch * width, d_model)

    @classmethod
    def check(cls, spec: EmbeddingSpec) -> None:
        check_kernels("conv", spec.kernels, MAX_LAYERS)
        if spec.channels is not None:
            check_int("channels", spec.channels, 1)
        check_choice("norm", spec.norm, NORMS)

    @classmethod
    def summary(cls, spec: EmbeddingSpec) -> str:
        width = f"/c{spec.channels}" if spec.channels is not None else ""
        norm = "/bn" if spec.norm == "batch" else ""
        return "stem=conv" + "-".join(str(k) for k in spec.kernels) + width + norm

    def forward(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        keep = None if mask is None else mask[:, None, :].to(x.dtype)  # (B, 1, T)
        x = x.transpose(1, 2)  # (B, T, C) -> (B, C, T): the stem stays in Conv1d's layout
        for conv, norm in zip(self.convs, self.norms):
            if keep is not None:
                x = x * keep
            x = conv(x)  # (B, width, T)
            x = F.gelu(norm(x, keep) if self.batch_norm else norm(x.transpose(1, 2)).transpose(1, 2))
        x, mask = patches(x.transpose(1, 2), mask, self.patch)  # (B, T', patch * width), padded steps zeroed again
        return self.project(x), mask  # (B, T', D)
