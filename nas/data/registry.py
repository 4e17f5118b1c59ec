"""The strict registry of task loaders, by name, and the one entry point :func:`load_task`.

A name is ``family`` or ``family:rest``. For generator families ``rest`` holds
parameters (``"mqar:seq_len=128,pairs=16"``); for families registered with an
``argument`` it is that argument (``"ucr:GunPoint"``, ``"file:/data/x.npz"``).
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, TypeVar

from nas.core.registry import unknown_name_message
from nas.data.base import Task, TaskError

Loader = TypeVar("Loader", bound=Callable[..., Task])

DEFAULT_TASK = "digits"
_RESERVED = ("seed", "cache_dir")


@dataclass(frozen=True)
class _Entry:
    loader: Callable[..., Task]
    argument: str | None
    listing: Callable[[], list[str]] | None
    references: Callable[[str], dict[str, float]] | None
    defaults: dict[str, Any]
    wants_cache: bool


_REGISTRY: dict[str, _Entry] = {}
BUILTIN = ("digits", "files", "listops", "mad", "mqar", "ucr")  # modules of nas.data whose import registers a loader


def _registered() -> dict[str, _Entry]:
    """The registry with the built-in loaders in it: imported on first use, so that importing the data layer
    (``load_model`` does, for InputSpec) pulls in no loader's libraries."""
    import importlib

    for module in BUILTIN:
        importlib.import_module(f"nas.data.{module}")
    return _REGISTRY


def register_task(
    name: str,
    *,
    argument: str | None = None,
    listing: Callable[[], list[str]] | None = None,
    references: Callable[[str], dict[str, float]] | None = None,
) -> Callable[[Loader], Loader]:
    """Decorator that makes a loader loadable by ``name``.

    The loader takes ``seed`` (and ``cache_dir`` if it caches) as keywords; its
    other keyword-only parameters, all with defaults, are the task's parameters.
    With ``argument`` (e.g. ``"path"``) the text after ``name:`` is passed as the
    first positional argument; ``listing`` returns the arguments :func:`list_tasks`
    shows and ``references(argument)`` the published scores. A duplicate name raises.
    """

    def decorate(loader: Loader) -> Loader:
        if name in _REGISTRY:
            raise ValueError(f"task {name!r} is already registered by {_REGISTRY[name].loader.__qualname__}")
        params = inspect.signature(loader).parameters
        defaults = {
            key: p.default for key, p in params.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and key not in _RESERVED
        }
        _REGISTRY[name] = _Entry(loader, argument, listing, references, defaults, "cache_dir" in params)
        return loader

    return decorate


def task_families() -> tuple[str, ...]:
    """Registered names as a user writes them: ``digits``, ``ucr:<name>``, ``file:<path>``, ..."""
    return tuple(f"{n}:<{e.argument}>" if e.argument else n for n, e in sorted(_registered().items()))


def list_tasks() -> list[str]:
    """Every loadable name, ``file:<path>`` excepted (any path of the user's).

    >>> "ucr:GunPoint" in list_tasks()
    True
    """
    names: list[str] = []
    for family, entry in sorted(_registered().items()):
        if entry.argument is None:
            names.append(family)
        elif entry.listing is not None:
            names.extend(f"{family}:{arg}" for arg in entry.listing())
    return names


def load_task(name: str = DEFAULT_TASK, *, seed: int = 0, cache_dir: str | Path = "results/cache", **params: Any) -> Task:
    """Load a task by name; the returned ``task.name`` is canonical (reloads the same tensors).

    >>> task = load_task("mqar:seq_len=128,pairs=16", seed=1)  # doctest: +SKIP
    >>> task = load_task("listops", min_len=20, max_len=60)      # doctest: +SKIP
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TaskError(f"seed={seed!r} must be an integer >= 0")
    family, entry, rest = _lookup(name)
    kwargs: dict[str, Any] = {"seed": seed}
    if entry.wants_cache:
        kwargs["cache_dir"] = Path(cache_dir)
    if entry.argument is not None:
        if not rest:
            raise TaskError(f"task {family!r} needs a {entry.argument}: write '{family}:<{entry.argument}>'")
        return entry.loader(rest, **kwargs, **_checked(family, entry, params))
    given = parse_params(family, rest)
    clash = sorted(set(given) & set(params))
    if clash:
        raise TaskError(f"task {name!r}: parameter(s) {clash} given both in the name and as keywords")
    values = _checked(family, entry, {**given, **params})
    task = entry.loader(**kwargs, **values)
    changed = [f"{k}={v}" for k, v in sorted(values.items()) if v != entry.defaults[k]]
    return replace(task, name=f"{family}:{','.join(changed)}" if changed else family)


def references_for(name: str) -> dict[str, float]:
    """Published scores for a canonical task name (see :meth:`Task.reference`)."""
    family, _, rest = name.partition(":")
    entry = _registered().get(family)
    if entry is None or entry.references is None or entry.argument is None:
        return {}
    return entry.references(rest)


def _lookup(name: str) -> tuple[str, _Entry, str]:
    if not isinstance(name, str):
        raise TaskError(f"task name must be a string, got {name!r}")
    family, _, rest = name.partition(":")
    if family not in _registered():
        raise TaskError(unknown_name_message("task", name, task_families()))
    return family, _REGISTRY[family], rest


def parse_params(family: str, text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise TaskError(f"task {family!r}: parameter {item!r} must look like key=value, e.g. '{family}:seq_len=128'")
        if key.strip() in params:
            raise TaskError(f"task {family!r}: parameter {key.strip()!r} is given twice")
        params[key.strip()] = value.strip()
    return params


def _checked(family: str, entry: _Entry, params: dict[str, Any]) -> dict[str, Any]:
    """Known parameter names only; strings from a name are converted to the default's type."""
    allowed = tuple(entry.defaults)
    values: dict[str, Any] = {}
    for key, value in params.items():
        if key not in entry.defaults:
            what = f"parameter of task {family!r}"
            raise TaskError(unknown_name_message(what, key, allowed) if allowed else f"task {family!r} takes no parameters, got {key!r}")
        values[key] = coerce_param(family, key, value, entry.defaults[key])
    return values


_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def coerce_param(family: str, key: str, value: Any, default: Any) -> Any:
    kind = type(default)
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        if kind is bool and text in ("true", "false"):
            return text == "true"
        if kind is not bool:
            with contextlib.suppress(ValueError):
                return kind(text)
    elif isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise TaskError(f"task {family!r}: {key}={value!r} must be {_KIND_NAMES.get(kind, kind.__name__)}")
