"""Validation of plain-data specs: the error type, and checks that name the field, the value and the rule."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from nas.core.registry import unknown_name_message


class SpecError(ValueError):
    """A spec that breaks a rule; the message names the field, the value and the rule."""


def check_choice(field_name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SpecError(f"{field_name}: " + unknown_name_message("value", value, allowed))


def check_int(field_name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SpecError(f"{field_name}={value!r} must be an integer >= {low}")


def build_dataclass(cls: type, data: Any, where: str, **convert: Any) -> Any:
    """Construct dataclass ``cls`` from a dict, refusing unknown keys by name; ``convert`` maps a key to a parser."""
    if not isinstance(data, dict):
        raise SpecError(f"{where} must be an object, got {data!r}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(sorted(known))}")
    values = {k: convert[k](v) if k in convert else v for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as err:
        raise SpecError(f"{where}: {err}") from None


__all__ = ["SpecError", "build_dataclass", "check_choice", "check_int"]
