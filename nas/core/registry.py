"""Strict registries by name: attention types, topologies, embeddings, tasks and benchmark suites all use one.

A duplicate name raises, so two components can never silently shadow each other;
an unknown name raises and lists the known ones, with a close match where there is one.

>>> SCORES = Registry("score")
>>> @SCORES.register("dot")
... def dot(q, k): ...
>>> SCORES.get("dto")
Traceback (most recent call last):
ValueError: unknown score 'dto'; did you mean 'dot'? allowed: dot
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Items of one kind by name; ``what`` names the kind in error messages ("attention type")."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that adds the decorated class or function under ``name``."""

        def decorate(item: T) -> T:
            self.add(name, item)
            return item

        return decorate

    def register_class(self, name: str) -> Callable[[T], T]:
        """Class decorator that adds the class under ``name`` and sets its ``name`` attribute to it."""

        def decorate(cls: T) -> T:
            self.add(name, cls)
            cls.name = name  # type: ignore[attr-defined]
            return cls

        return decorate

    def add(self, name: str, item: T) -> None:
        if name in self._items:
            held = getattr(self._items[name], "__qualname__", repr(self._items[name]))
            raise ValueError(f"{self.what} {name!r} is already registered by {held}")
        self._items[name] = item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise ValueError(unknown_name_message(self.what, name, self.names())) from None

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._items))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def unknown_name_message(what: str, value: object, allowed: tuple[str, ...] | list[str]) -> str:
    """``unknown X 'dto'; did you mean 'dot'? allowed: ...``: shared by every name lookup."""
    close = difflib.get_close_matches(str(value), list(allowed), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {value!r}{hint} allowed: {', '.join(allowed)}"


__all__ = ["Registry", "unknown_name_message"]
