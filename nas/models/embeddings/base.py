"""What every embedding shares: the rules it states, the inputs it accepts, and how steps group into patches.

An embedding turns steps ``(B, T, F)`` (or token ids ``(B, T)``) and a mask
``(B, T)`` into tokens ``(B, ceil(T / patch), D)`` and their mask; the position
table and every block after it only ever see those tokens.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.core.checks import SpecError

if TYPE_CHECKING:
    from nas.data.spec import InputSpec


class EmbeddingSpec(Protocol):
    """The fields an embedding reads from ``nas.models.spec.EmbeddingSpec``; stated here so that this layer
    never imports the spec module that validates through it."""

    type: str
    kernels: tuple[int, ...]
    channels: int | None
    norm: str


class Embedding(nn.Module, ABC):
    """Base of every embedding, registered by name with ``register_embedding``.

    The class flags say which inputs it can embed; ``build_model`` refuses the
    rest (see ``check_input``) before anything is built.
    """

    name: ClassVar[str] = ""
    tokens: ClassVar[bool] = False  # embeds token ids (inputs with a vocabulary)
    steps: ClassVar[bool] = True  # embeds continuous steps
    per_token: ClassVar[bool] = False  # may serve per-token tasks (one prediction per input step)

    def __init__(self, spec: EmbeddingSpec, input_spec: InputSpec, d_model: int, patch: int):
        """Called once by ``CompositeModel``; every embedding is built from these four arguments."""
        super().__init__()

    @classmethod
    def check(cls, spec: EmbeddingSpec) -> None:
        """Called by ``EmbeddingSpec.__post_init__``: raise ``SpecError`` when a field breaks this family's rules."""

    @classmethod
    def summary(cls, spec: EmbeddingSpec) -> str:
        """The spec's part of ``ArchSpec.summary()``; empty for the default, so older specs read as before."""
        return ""

    @abstractmethod
    def forward(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(B, T, F) or (B, T) ids, mask (B, T) -> tokens (B, ceil(T / patch), D), mask (B, ceil(T / patch))."""


def check_kernels(name: str, kernels: tuple[int, ...], max_layers: int) -> None:
    """Refuse a stem of other than 1 to ``max_layers`` odd kernel sizes (same-length padding needs them odd)."""
    if not 1 <= len(kernels) <= max_layers:
        raise SpecError(f"kernels={kernels}: embedding {name!r} takes 1 to {max_layers} kernel sizes, got {len(kernels)}")
    for k in kernels:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise SpecError(f"kernels={kernels}: kernel size {k!r} must be an odd integer >= 1 "
                            "(same-length padding puts k // 2 steps on each side)")


def check_default_norm(name: str, spec: EmbeddingSpec) -> None:
    """Refuse a stem norm in a family whose convolutions (if any) are not normalised."""
    if spec.norm != "layer":
        raise SpecError(f"norm={spec.norm!r} is not allowed for embedding {name!r}; only 'conv' takes "
                        "norm='batch', the rest keep the default 'layer'")


def patches(x: Tensor, mask: Tensor | None, patch: int) -> tuple[Tensor, Tensor | None]:
    """Steps (B, T, C) grouped into (B, ceil(T / patch), patch * C), and the patch mask.

    Padded steps are zeroed first, so whatever the padding holds cannot leak into
    a real patch; a patch is real if any of its steps is.
    """
    b, t, c = x.shape
    if mask is not None:
        x = x * mask[..., None].to(x.dtype)
    pad = (-t) % patch
    if pad:
        x = F.pad(x, (0, 0, 0, pad))
        mask = torch.ones(b, t, dtype=torch.bool, device=x.device) if mask is None else mask
        mask = F.pad(mask, (0, pad), value=False)
    if patch > 1:
        x = x.reshape(b, -1, patch * c)
        mask = None if mask is None else mask.reshape(b, -1, patch).any(-1)
    return x, mask


__all__ = ["Embedding", "check_kernels", "patches"]
