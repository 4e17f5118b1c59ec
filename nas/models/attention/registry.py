"""The strict registry of attention families, by name."""

from __future__ import annotations

from typing import Callable, TypeVar

from torch import nn

from nas.core.registry import Registry

T = TypeVar("T", bound=type[nn.Module])

ATTENTION: Registry[type[nn.Module]] = Registry("attention type")


def register_attention(name: str) -> Callable[[T], T]:
    """Class decorator that makes an attention family buildable by ``name``; a second family under one name raises."""
    return ATTENTION.register_class(name)


def get_attention(name: str) -> type[nn.Module]:
    """The family registered as ``name``; an unknown name lists the known ones."""
    return ATTENTION.get(name)


def attention_names() -> tuple[str, ...]:
    return ATTENTION.names()
