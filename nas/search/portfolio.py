"""Known-good candidates a new study runs first: the best can then never be worse than the obvious hand-made model.

A space file lists them under ``portfolio``, in the space's own vocabulary; a
key an entry leaves out takes the key's default (or, where the space does not
offer it, its first choice)::

    portfolio:
      transformer-64: {model: {d_model: 64, depth: 2}, attention: {type: dot, heads: 4}}

Each entry becomes Optuna parameters by drawing the space with its values
(:class:`Preset`), so the enqueued trial builds exactly that model and TPE learns
from it like any other trial. The pruner sees its learning curve but never stops it
(:mod:`nas.search.objective`). ``portfolio: []`` turns it off; so does ``--no-portfolio``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import optuna

from nas.search.choices import Choice, Key, SpaceError

PORTFOLIO_ATTR = "portfolio"  # user attribute of an enqueued portfolio trial: the entry's name


@dataclass(frozen=True)
class Candidate:
    """One portfolio entry: its name and values by dotted path (``attention.type``)."""

    name: str
    values: Mapping[str, Any] = field(default_factory=dict)


def parse_portfolio(raw: Any, schema: Mapping[str, Mapping[str, Key]], source: str) -> tuple[Candidate, ...]:
    """Validate a space file's ``portfolio`` section: a mapping of names to sections of fixed values."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise SpaceError(f"{source}: portfolio must map names to candidates, got {raw!r}")
    candidates = []
    for name, sections in raw.items():
        where = f"{source}: portfolio entry {name!r}"
        if not isinstance(sections, dict):
            raise SpaceError(f"{where} must be a mapping of sections, got {sections!r}")
        values: dict[str, Any] = {}
        for section, keys in sections.items():
            if section not in schema:
                raise SpaceError(f"{where}: unknown section {section!r}; allowed: {', '.join(schema)}")
            for key, value in (keys or {}).items():
                if key not in schema[section]:
                    raise SpaceError(f"{where}: unknown key '{section}.{key}'; allowed in {section}: "
                                     f"{', '.join(schema[section])}")
                try:
                    values[f"{section}.{key}"] = schema[section][key].check(value)
                except ValueError as err:
                    raise SpaceError(f"{where}: {section}.{key}={value!r}: {err}") from None
        candidates.append(Candidate(str(name), values))
    return tuple(candidates)


class Preset:
    """A stand-in for an Optuna trial that answers every draw with a candidate's value, and records the
    parameters a real trial would have had."""

    def __init__(self, candidate: Candidate, defaults: Callable[[str], Any]):
        self.candidate, self.defaults = candidate, defaults
        self.params: dict[str, Any] = {}
        self._value: Any = None

    def choose(self, choice: Choice, name: str, path: str, options: tuple[Any, ...] | None, stable: bool) -> Any:
        """The candidate's value for ``path`` where the space allows it here; a refusal names what is allowed."""
        allowed = choice.options() if options is None else options
        if path not in self.candidate.values:
            wanted = self._fallback(choice, path, allowed)
            self._value = wanted
            return choice.draw(self, name, options, stable)
        wanted = self.candidate.values[path]
        if choice.is_range and allowed is not None and wanted not in allowed:  # an int range: the step decides
            raise SpaceError(f"portfolio entry {self.candidate.name!r}: {path}={wanted!r} is not offered here; "
                             f"allowed: {choice.low} to {choice.high} in steps of {choice.step or 1}")
        if allowed is not None and wanted not in allowed:
            raise SpaceError(f"portfolio entry {self.candidate.name!r}: {path}={wanted!r} is not offered here; "
                             f"allowed: {', '.join(map(str, allowed))}")
        if allowed is None and not choice.low <= wanted <= choice.high:
            raise SpaceError(f"portfolio entry {self.candidate.name!r}: {path}={wanted!r} is outside "
                             f"[{choice.low}, {choice.high}]")
        self._value = wanted
        return choice.draw(self, name, options, stable)

    def _fallback(self, choice: Choice, path: str, allowed: tuple[Any, ...] | None) -> Any:
        default = self.defaults(path)
        if allowed is not None:
            return default if default in allowed else allowed[0]
        if choice.low <= default <= choice.high:
            return default
        return math.sqrt(choice.low * choice.high) if choice.log else (choice.low + choice.high) / 2

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.params[name] = self._value
        return self._value

    def suggest_int(self, name: str, *args: Any, **kwargs: Any) -> int:
        self.params[name] = int(self._value)
        return int(self._value)

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> float:
        self.params[name] = float(self._value)
        return float(self._value)


def enqueue_portfolio(study: optuna.Study, entries: list[tuple[str, dict[str, Any]]]) -> int:
    """Enqueue ``(name, params)`` entries as the study's next trials, each marked with its name."""
    for name, params in entries:
        study.enqueue_trial(params, user_attrs={PORTFOLIO_ATTR: name})
    return len(entries)


__all__ = ["PORTFOLIO_ATTR", "Candidate", "Preset", "enqueue_portfolio", "parse_portfolio"]
