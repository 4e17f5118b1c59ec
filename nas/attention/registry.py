"""The strict registry of attention families, by name."""

from __future__ import annotations

import difflib
from typing import Callable, TypeVar

from torch import nn

T = TypeVar("T", bound=type[nn.Module])

_REGISTRY: dict[str, type[nn.Module]] = {}


def register_attention(name: str) -> Callable[[T], T]:
    """Class decorator that makes an attention family buildable by ``name``.

    A second family under the same name raises, so that two modules can never
    silently shadow each other.
    """

    def decorate(cls: T) -> T:
        if name in _REGISTRY:
            raise ValueError(
                f"attention type {name!r} is already registered by {_REGISTRY[name].__qualname__}"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def get_attention(name: str) -> type[nn.Module]:
    """The family registered as ``name``; an unknown name lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(unknown_name_message("attention type", name, attention_names())) from None


def attention_names() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def unknown_name_message(what: str, value: object, allowed: tuple[str, ...] | list[str]) -> str:
    """`unknown X 'dto'; did you mean 'dot'? allowed: ...` — shared by every name lookup."""
    close = difflib.get_close_matches(str(value), list(allowed), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {value!r}{hint} allowed: {', '.join(allowed)}"
