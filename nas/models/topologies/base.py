"""What every topology states: how many attention modules it takes, which merges, any rule of its own, and its builder.

A topology is data about rules plus one builder, not a module: the modules it
builds differ (one attention, parallel branches, a serial stack), so the registry
holds one :class:`Topology` object per name and ``build`` returns the module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Protocol, Sequence

from torch import nn

from nas.models.attention import Attention, get_attention



class AttentionSpec(Protocol):
    """The fields a topology reads from ``nas.models.spec.AttentionSpec``; stated here so that this layer never
    imports the spec module that validates through it."""

    type: str
    heads: int
    kv_heads: int | None
    window: int | None

    @property
    def kv(self) -> int: ...


class MixerSpec(Protocol):
    """The fields a topology reads from ``nas.models.spec.MixerSpec``."""

    topology: str
    branches: Sequence[AttentionSpec]
    merge: str | None


class Topology(ABC):
    """A way to arrange a block's attention modules, registered by name with :func:`register_topology`.

    The class attributes are the rules every topology has; ``MixerSpec`` enforces
    them on construction (see ``check_mixer``), then calls :meth:`check` for the
    topology's own. ``build`` is called once per block, by ``Block``.
    """

    name: ClassVar[str] = ""
    min_branches: ClassVar[int] = 2
    max_branches: ClassVar[int | None] = None  # None: no upper limit
    merges: ClassVar[tuple[str, ...]] = ()  # how branch outputs may combine; empty: the spec takes no merge

    def __repr__(self) -> str:  # names the holder in the registry's duplicate-name error
        return f"{type(self).__qualname__}()"

    def check(self, spec: MixerSpec) -> None:
        """Called after the branch-count and merge rules pass: raise ``SpecError`` for a rule of this topology's own."""

    @abstractmethod
    def build(self, spec: MixerSpec, d_model: int, position: str, dropout: float) -> nn.Module:
        """The mixer ``(B, T, D)`` plus mask -> ``(B, T, D)``, INCLUDING its residual path.

        The residual is the topology's business because ``serial`` needs one
        residual and norm per module, where the others need one around the whole mixer.
        """


def build_attention(spec: AttentionSpec, d_model: int, position: str, dropout: float) -> Attention:
    """The attention module ``spec`` describes, by registry lookup of its family."""
    family = get_attention(spec.type)
    return family(d_model, spec.heads, spec.kv_heads, spec.window, position, dropout)


__all__ = ["Topology", "build_attention"]
