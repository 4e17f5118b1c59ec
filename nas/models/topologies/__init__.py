"""Topologies of a block's token mixer, each registered by name with its own rules and builder.

``MixerSpec`` validates by asking this registry and ``Block`` builds by asking it,
so a new topology is one module here and needs no edit anywhere else.

>>> from nas.models.topologies import get_topology
>>> get_topology("parallel").merges
('sum', 'concat', 'gate')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

from nas.core.checks import SpecError, check_choice
from nas.core.registry import Registry
from nas.models.topologies.base import Topology, build_attention

if TYPE_CHECKING:
    from nas.models.topologies.base import MixerSpec

T = TypeVar("T", bound=type[Topology])

TOPOLOGY: Registry[Topology] = Registry("topology")
_ORDER: list[str] = []  # registration order: the order a search space lists them in


def register_topology(name: str) -> Callable[[T], T]:
    """Class decorator that registers one instance of a :class:`Topology` under ``name``; a duplicate name raises."""

    def decorate(cls: T) -> T:
        cls.name = name
        TOPOLOGY.add(name, cls())
        _ORDER.append(name)
        return cls

    return decorate


def get_topology(name: str) -> Topology:
    """The topology registered as ``name``; an unknown name lists the known ones, with a close match."""
    return TOPOLOGY.get(name)


def topology_names() -> tuple[str, ...]:
    """Registered names in registration order (single, parallel, serial, fused, then any added later)."""
    return tuple(_ORDER)


def merge_names() -> tuple[str, ...]:
    """Every merge some topology takes, in first-seen order."""
    return tuple(dict.fromkeys(m for n in _ORDER for m in TOPOLOGY.get(n).merges))


def check_mixer(spec: MixerSpec) -> None:
    """Every rule ``spec.topology`` states, as ``SpecError``; called by ``MixerSpec.__post_init__``."""
    try:
        topology = get_topology(spec.topology)
    except ValueError as err:
        raise SpecError(str(err)) from None
    n, low, high = len(spec.branches), topology.min_branches, topology.max_branches
    if low == high and n != low:
        raise SpecError(f"topology {spec.topology!r} takes exactly {low} attention module{'s' * (low != 1)}, got {n}")
    if n < low:
        raise SpecError(f"topology {spec.topology!r} needs at least {low} branches, got {n}")
    if high is not None and n > high:
        raise SpecError(f"topology {spec.topology!r} takes at most {high} branches, got {n}")
    if topology.merges:
        check_choice("merge", spec.merge, topology.merges)
    elif spec.merge is not None:
        takers = " or ".join(repr(name) for name in _ORDER if TOPOLOGY.get(name).merges)
        raise SpecError(f"merge={spec.merge!r} is only allowed for {takers}, not {spec.topology!r}")
    topology.check(spec)


# Importing a topology registers it; this order is the order of topology_names().
from nas.models.topologies import single, parallel, serial, fused  # noqa: E402,F401

__all__ = ["Topology", "build_attention", "check_mixer", "get_topology", "merge_names", "register_topology",
           "topology_names"]
