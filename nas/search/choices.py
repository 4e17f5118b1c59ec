"""One key of a search-space file: a fixed value, a list to choose from, or a numeric range.

A :class:`Choice` is parsed and checked against its :class:`Key` (the type and
domain the key allows) when the file is read, so that a bad value is reported
with its file and key path before anything is built. :meth:`Choice.draw` is the
only code that calls ``trial.suggest_*``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

RANGE_KEYS = ("low", "high", "step", "log")


class SpaceError(ValueError):
    """A search-space file that breaks a rule; the message names file, key path, value and what is allowed."""


@dataclass(frozen=True)
class Key:
    """What one key accepts: ``kind`` is ``int``, ``float`` or ``name``; a key with ``null`` also takes null, which
    means what ``null`` names (``kv_heads: null`` is one key-value head per query head)."""

    kind: str
    default: Any
    low: float | None = None
    high: float | None = None  # exclusive
    low_open: bool = False
    names: Callable[[], tuple[str, ...]] | None = None
    ranges: bool = True
    null: str | None = None

    def rule(self) -> str:
        if self.kind == "name":
            return "one of " + ", ".join(self.names())
        what = {"int": "an integer", "float": "a number"}[self.kind]
        if self.null is not None:
            what = f"null (= {self.null}) or {what}"
        if self.high is not None:
            return f"{what} in [{self.low:g}, {self.high:g})"
        return f"{what} {'>' if self.low_open else '>='} {self.low:g}"

    def check(self, value: Any) -> Any:
        """``value`` in this key's type, or raise a bare ValueError naming the rule."""
        if self.kind == "name":
            if value not in self.names():
                raise ValueError(self.rule())
            return value
        if self.null is not None and value is None:
            return None
        if self.kind == "float" and isinstance(value, str):
            value = _parse_float(value)  # YAML 1.1 reads `1e-3` (no dot) as a string
        numbers = (int, float) if self.kind == "float" else (int,)
        if isinstance(value, bool) or not isinstance(value, numbers) or not math.isfinite(value):
            raise ValueError(self.rule())
        if self.kind == "float":
            value = float(value)
        too_low = value <= self.low if self.low_open else value < self.low
        if too_low or (self.high is not None and value >= self.high):
            raise ValueError(self.rule())
        return value


def _parse_float(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class Choice:
    """A key's setting: ``values`` (one = fixed, several = searched) or a ``low``..``high`` range."""

    path: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    integer: bool = False
    tag: str = ""  # appended to every name: marks a choice changed since the study began

    @property
    def is_range(self) -> bool:
        return self.low is not None

    def options(self) -> tuple[Any, ...] | None:
        """Every value the choice can take; None for a continuous range."""
        if not self.is_range:
            return self.values
        if not self.integer:
            return None
        return tuple(range(int(self.low), int(self.high) + 1, int(self.step or 1)))

    def draw(self, trial: Any, name: str, options: tuple[Any, ...] | None = None, stable: bool = False) -> Any:
        """Suggest a value under ``name``; a fixed value is returned without asking the trial.

        ``options`` narrows a list to the values allowed by earlier choices. The
        name then gets the allowed values appended (``heads[1,2,4]``) unless
        ``stable`` says the narrowing never changes: Optuna requires one
        distribution per name, and the suffix is what guarantees it.
        """
        name += self.tag
        if self.is_range:
            if self.integer:
                return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
            return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)
        values = self.values if options is None else options
        if not values:
            raise SpaceError(f"{self.path}: no value of {list(self.values)} is allowed for {name}")
        if len(values) == 1:
            return values[0]
        if values != self.values and not stable:
            name = f"{name}[{','.join(_text(v) for v in values)}]"
        return trial.suggest_categorical(name, values)

    def to_data(self) -> Any:
        """The choice as plain data, the way a file would write it."""
        if not self.is_range:
            return self.values[0] if len(self.values) == 1 else list(self.values)
        data: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.step is not None:
            data["step"] = self.step
        if self.log:
            data["log"] = True
        return data


def _text(value: Any) -> str:
    return "null" if value is None else str(value)


def parse_choice(path: str, raw: Any, key: Key) -> Choice:
    """A :class:`Choice` from what YAML gave for ``path``; raises a bare ValueError on a bad value."""
    if isinstance(raw, dict):
        return _parse_range(path, raw, key)
    if isinstance(raw, list):
        if not raw:
            raise ValueError("an empty list offers nothing to choose")
        values = []
        for item in raw:
            try:
                values.append(key.check(item))
            except ValueError as err:
                raise ValueError(f"item {item!r} is not {err}") from None
        if len(set(map(repr, values))) < len(values):
            raise ValueError("the list repeats a value")
        return Choice(path, tuple(values))
    try:
        return Choice(path, (key.check(raw),))
    except ValueError as err:
        raise ValueError(f"must be {err}, a list of them" + (", or a range {low, high}" if key.ranges else "")) from None


def _parse_range(path: str, raw: dict[str, Any], key: Key) -> Choice:
    if not key.ranges:
        raise ValueError("takes a value or a list, not a range")
    unknown = sorted(set(raw) - set(RANGE_KEYS))
    if unknown:
        raise ValueError(f"unknown range key(s) {unknown}; allowed: {', '.join(RANGE_KEYS)}")
    if "low" not in raw or "high" not in raw:
        raise ValueError("a range needs both low and high")
    low, high = (_bound(key, raw[k], k) for k in ("low", "high"))
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"log={log!r} must be true or false")
    if low > high:
        raise ValueError(f"`low <= high` must hold, but got low={low!r}, high={high!r}")
    if log and low <= 0:
        raise ValueError(f"a log range needs low > 0, but got low={low!r}")
    step = raw.get("step")
    if step is not None:
        if log:
            raise ValueError("step and log cannot be combined")
        step = _bound(Key(key.kind, None, 0, low_open=True), step, "step")
    return Choice(path, low=low, high=high, step=step, log=log, integer=key.kind == "int")


def _bound(key: Key, value: Any, which: str) -> Any:
    try:
        return key.check(value)
    except ValueError as err:
        raise ValueError(f"{which}={value!r} must be {err}") from None
