"""Architectures as plain, validated, JSON-round-tripping data.

An :class:`ArchSpec` is everything needed to rebuild a model: it is what every
trial stores, what the search compares (by :meth:`ArchSpec.hash`) and what an
export ships beside its weights. Validation happens on construction, so an
invalid architecture cannot exist, let alone be trained.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from nas.core.checks import SpecError, build_dataclass, check_choice, check_int
from nas.models.attention import get_attention
from nas.models.embeddings import get_embedding
from nas.models.topologies import check_mixer, merge_names, topology_names
from nas.models.topologies.fused import fusable_types

SCHEMA_VERSION = 1

# Derived from the topology registry, and kept because the search layer imports them.
TOPOLOGIES = topology_names()  # ("single", "parallel", "serial", "fused")
MERGES = merge_names()  # ("sum", "concat", "gate")
POSITIONS = ("learned", "sinusoidal", "rotary", "alibi", "none")
READOUTS = ("mean", "first", "attention")
ACTIVATIONS = ("gelu", "relu", "swiglu")


def _lookup(get, name: str):
    """A registry lookup whose unknown-name error (known names, close match) is raised as ``SpecError``."""
    try:
        return get(name)
    except ValueError as err:
        raise SpecError(str(err)) from None


@dataclass(frozen=True)
class AttentionSpec:
    """One attention module: its family, heads, key/value heads and (local only) window.

    ``heads=1`` is single-head self-attention; ``kv_heads=1`` with more heads is
    multi-query, ``1 < kv_heads < heads`` grouped-query; ``None`` means ``heads``.
    """

    type: str
    heads: int = 1
    kv_heads: int | None = None
    window: int | None = None

    def __post_init__(self) -> None:
        family = _lookup(get_attention, self.type)
        check_int("heads", self.heads, 1)
        if self.kv_heads is not None:
            check_int("kv_heads", self.kv_heads, 1)
            if self.heads % self.kv_heads:
                raise SpecError(f"kv_heads={self.kv_heads} must divide heads={self.heads}")
        if family.windowed:
            if self.window is None:
                raise SpecError(f"window is required for {self.type!r} attention (an integer >= 1)")
            check_int("window", self.window, 1)
        elif self.window is not None:
            raise SpecError(f"window={self.window} is only allowed for windowed types, not {self.type!r}")

    @property
    def kv(self) -> int:
        return self.heads if self.kv_heads is None else self.kv_heads

    def summary(self) -> str:
        name = f"{self.type}(w{self.window})" if self.window is not None else self.type
        kv = f"kv{self.kv_heads}" if self.kv_heads not in (None, self.heads) else ""
        return f"{name}/h{self.heads}{kv}"


@dataclass(frozen=True)
class MixerSpec:
    """How a block mixes tokens: one module, parallel branches, a serial stack, or fused scores.

    Each topology states its own rules (branch count, merges, any of its own) in
    ``nas.models.topologies``; construction asks that registry, so an invalid mixer cannot exist.
    """

    topology: str
    branches: tuple[AttentionSpec, ...]
    merge: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", tuple(self.branches))
        check_mixer(self)

    def summary(self) -> str:
        inner = " + ".join(b.summary() for b in self.branches)
        if self.topology == "single":
            return inner
        merge = f" merge={self.merge}" if self.merge else ""
        return f"{self.topology}[{inner}]{merge}"


@dataclass(frozen=True)
class BlockSpec:
    """A pre-norm residual block: token mixer, then feed-forward of ``ff_mult * d_model``."""

    mixer: MixerSpec
    ff_mult: int = 4
    activation: str = "gelu"

    def __post_init__(self) -> None:
        check_int("ff_mult", self.ff_mult, 1)
        check_choice("activation", self.activation, ACTIVATIONS)

    def summary(self) -> str:
        return self.mixer.summary()


@dataclass(frozen=True)
class EmbeddingSpec:
    """How input steps become tokens: ``linear`` patches (or token ids), or a ``conv`` stem.

    ``kernels`` are the stem's kernel sizes, one Conv1d each (``conv``: 1 to 3 odd
    sizes; ``linear``: none); ``channels`` its width, None meaning d_model; ``norm``
    its normalisation, ``layer`` or (``conv`` only) ``batch``. The rules live with
    each embedding in ``nas.models.embeddings``.

    >>> EmbeddingSpec("conv", kernels=(7, 5, 3)).summary()
    'stem=conv7-5-3'
    """

    type: str = "linear"
    kernels: tuple[int, ...] = ()
    channels: int | None = None
    norm: str = "layer"

    def __post_init__(self) -> None:
        if not isinstance(self.kernels, (list, tuple)):
            raise SpecError(f"kernels={self.kernels!r} must be a list of kernel sizes")
        object.__setattr__(self, "kernels", tuple(self.kernels))
        _lookup(get_embedding, self.type).check(self)

    def summary(self) -> str:
        """Empty for the default, so that only a spec with a stem says so."""
        return get_embedding(self.type).summary(self)


@dataclass(frozen=True)
class ArchSpec:
    """A whole composite model; see the module docstring for why it is plain data.

    >>> spec = ArchSpec(d_model=64, blocks=(BlockSpec(MixerSpec("single", (AttentionSpec("dot", 4),))),))
    >>> ArchSpec.from_json(spec.to_json()) == spec
    True
    """

    d_model: int
    blocks: tuple[BlockSpec, ...]
    position: str = "sinusoidal"
    readout: str = "mean"
    patch: int = 1
    dropout: float = 0.0
    embedding: EmbeddingSpec = EmbeddingSpec()

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not isinstance(self.embedding, EmbeddingSpec):
            raise SpecError(f"embedding={self.embedding!r} must be an EmbeddingSpec")
        check_int("d_model", self.d_model, 1)
        check_int("patch", self.patch, 1)
        if not self.blocks:
            raise SpecError("blocks must hold at least 1 block, got 0")
        check_choice("position", self.position, POSITIONS)
        check_choice("readout", self.readout, READOUTS)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise SpecError(f"dropout={self.dropout!r} must be a number in [0, 1)")
        for i, block in enumerate(self.blocks):
            for branch in block.mixer.branches:
                self._check_attention(i, branch)

    def _check_attention(self, block: int, att: AttentionSpec) -> None:
        where = f"block {block} {att.type!r}"
        if self.d_model % att.heads:
            raise SpecError(f"{where}: heads={att.heads} must divide d_model={self.d_model}")
        family = get_attention(att.type)
        if self.position == "alibi" and not family.scored:
            raise SpecError(f"{where}: position 'alibi' biases a score matrix, which {att.type!r} has not")
        if self.position == "rotary":
            if not family.rotary:
                raise SpecError(f"{where}: position 'rotary' needs a dot-product score, which {att.type!r} has not")
            if (self.d_model // att.heads) % 2:
                raise SpecError(
                    f"{where}: position 'rotary' needs an even head size, got d_model/heads="
                    f"{self.d_model}/{att.heads}={self.d_model // att.heads}"
                )

    # --- JSON -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data; the default embedding (and a stem's default norm) is left out, so that specs written
        before they existed keep their JSON and hash."""
        data = {"schema_version": SCHEMA_VERSION, **asdict(self)}
        if self.embedding == EmbeddingSpec():
            del data["embedding"]
        elif self.embedding.norm == "layer":
            del data["embedding"]["norm"]
        return data

    def to_json(self) -> str:
        """Canonical JSON (sorted keys), so equal specs give equal strings and hashes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ArchSpec":
        data = dict(data)
        version = data.pop("schema_version", None)
        if version != SCHEMA_VERSION:
            raise SpecError(f"schema_version={version!r} is not supported; this version reads {SCHEMA_VERSION}")
        blocks = [
            build_dataclass(BlockSpec, b, "blocks[]", mixer=lambda m: build_dataclass(
                MixerSpec, m, "mixer", branches=lambda bs: tuple(build_dataclass(AttentionSpec, a, "branches[]") for a in bs)))
            for b in _require_list(data, "blocks")
        ]
        data["blocks"] = tuple(blocks)
        if "embedding" in data:  # absent in files written before embeddings existed: the default, linear
            data["embedding"] = build_dataclass(EmbeddingSpec, data["embedding"], "embedding")
        return build_dataclass(cls, data, "arch")

    @classmethod
    def from_json(cls, text: str) -> "ArchSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError(f"architecture JSON does not parse: {err}") from None
        if not isinstance(data, dict):
            raise SpecError(f"architecture JSON must be an object, got {type(data).__name__}")
        return cls.from_dict(data)

    def hash(self) -> str:
        """A stable 16-hex-digit fingerprint of the architecture."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def summary(self) -> str:
        """One line such as ``2x parallel[dot/h4 + additive/h1] merge=gate | d=64 pos=none pool=mean stem=conv5-3``."""
        groups: list[tuple[int, str]] = []
        for block in self.blocks:
            text = block.summary()
            if groups and groups[-1][1] == text:
                groups[-1] = (groups[-1][0] + 1, text)
            else:
                groups.append((1, text))
        mixers = " ; ".join(f"{n}x {text}" for n, text in groups)
        patch = f" patch={self.patch}" if self.patch > 1 else ""
        stem = self.embedding.summary()
        stem = f" {stem}" if stem else ""
        return f"{mixers} | d={self.d_model} pos={self.position} pool={self.readout}{patch}{stem}"


def _require_list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"{key} must be a list, got {value!r}")
    return list(value)


__all__ = [
    "SCHEMA_VERSION",
    "ArchSpec",
    "AttentionSpec",
    "BlockSpec",
    "EmbeddingSpec",
    "MixerSpec",
    "SpecError",
    "fusable_types",
]
