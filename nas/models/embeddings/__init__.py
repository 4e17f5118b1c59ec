"""Embeddings: how input steps become the tokens the blocks read, each registered by name.

``EmbeddingSpec`` validates by asking this registry, ``build_model`` checks the
input against it and ``CompositeModel`` builds by it; a new embedding is one
module here.

>>> from nas.models.embeddings import get_embedding
>>> get_embedding("conv").tokens
False
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

from nas.core.checks import SpecError
from nas.core.registry import Registry
from nas.models.embeddings.base import Embedding, patches

if TYPE_CHECKING:
    from nas.data.spec import InputSpec
    from nas.models.embeddings.base import EmbeddingSpec

T = TypeVar("T", bound=type[Embedding])

EMBEDDING: Registry[type[Embedding]] = Registry("embedding")


def register_embedding(name: str) -> Callable[[T], T]:
    """Class decorator that makes an embedding buildable by ``name``; a second class under one name raises."""
    return EMBEDDING.register_class(name)


def get_embedding(name: str) -> type[Embedding]:
    """The embedding registered as ``name``; an unknown name lists the known ones, with a close match."""
    return EMBEDDING.get(name)


def embedding_names() -> tuple[str, ...]:
    return EMBEDDING.names()


def fits(name: str, input_spec: InputSpec) -> bool:
    """Whether embedding ``name`` can embed inputs like ``input_spec`` (token ids or steps; per-token or pooled)."""
    family = get_embedding(name)
    return (family.tokens if input_spec.kind == "tokens" else family.steps) and (family.per_token
                                                                                  or not input_spec.per_token)


def check_input(spec: EmbeddingSpec, input_spec: InputSpec, patch: int) -> None:
    """Refuse, as a one-line ``SpecError``, an embedding or patch the input cannot take; called by ``build_model``."""
    family = get_embedding(spec.type)
    if input_spec.kind == "tokens" and not family.tokens:
        able = ", ".join(repr(n) for n in embedding_names() if get_embedding(n).tokens)
        raise SpecError(f"embedding {spec.type!r} reads continuous steps; token inputs need embedding {able}")
    if input_spec.kind != "tokens" and not family.steps:
        able = ", ".join(repr(n) for n in embedding_names() if get_embedding(n).steps)
        raise SpecError(f"embedding {spec.type!r} reads token ids; continuous steps need embedding {able}")
    if input_spec.per_token and not family.per_token:
        able = ", ".join(repr(n) for n in embedding_names() if get_embedding(n).per_token)
        raise SpecError(f"embedding {spec.type!r} is for pooled tasks; per-token tasks need embedding {able}")
    if patch > 1 and input_spec.kind == "tokens":
        raise SpecError(f"patch={patch} groups continuous steps; token inputs need patch=1")
    if patch > 1 and input_spec.per_token:
        raise SpecError(f"patch={patch} would merge the positions a per-token task predicts; use patch=1")


# Importing an embedding registers it.
from nas.models.embeddings import conv, linear, shortconv  # noqa: E402,F401

__all__ = ["Embedding", "check_input", "embedding_names", "fits", "get_embedding", "patches", "register_embedding"]
