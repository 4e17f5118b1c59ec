"""Architectures as plain, validated, JSON-round-tripping data.

An :class:`ArchSpec` is everything needed to rebuild a model: it is what every
trial stores, what the search compares (by :meth:`ArchSpec.hash`) and what an
export ships beside its weights. Validation happens on construction, so an
invalid architecture cannot exist, let alone be trained.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from nas.attention import get_attention
from nas.attention.registry import unknown_name_message

SCHEMA_VERSION = 1

TOPOLOGIES = ("single", "parallel", "serial", "fused")
MERGES = ("sum", "concat", "gate")
POSITIONS = ("learned", "sinusoidal", "rotary", "alibi", "none")
READOUTS = ("mean", "first", "attention")
ACTIVATIONS = ("gelu", "relu", "swiglu")
INPUT_KINDS = ("continuous", "tokens")
TARGETS = ("classification", "regression")


class SpecError(ValueError):
    """A spec that breaks a rule; the message names the field, the value and the rule."""


def _check_choice(field_name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SpecError(f"{field_name}: " + unknown_name_message("value", value, allowed))


def _family(name: str):
    try:
        return get_attention(name)
    except ValueError as err:
        raise SpecError(str(err)) from None


def _check_int(field_name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SpecError(f"{field_name}={value!r} must be an integer >= {low}")


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
        family = _family(self.type)
        _check_int("heads", self.heads, 1)
        if self.kv_heads is not None:
            _check_int("kv_heads", self.kv_heads, 1)
            if self.heads % self.kv_heads:
                raise SpecError(f"kv_heads={self.kv_heads} must divide heads={self.heads}")
        if family.windowed:
            if self.window is None:
                raise SpecError(f"window is required for {self.type!r} attention (an integer >= 1)")
            _check_int("window", self.window, 1)
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
    """How a block mixes tokens: one module, parallel branches, a serial stack, or fused scores."""

    topology: str
    branches: tuple[AttentionSpec, ...]
    merge: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", tuple(self.branches))
        _check_choice("topology", self.topology, TOPOLOGIES)
        n = len(self.branches)
        if self.topology == "single" and n != 1:
            raise SpecError(f"topology 'single' takes exactly 1 attention module, got {n}")
        if self.topology != "single" and n < 2:
            raise SpecError(f"topology {self.topology!r} needs at least 2 branches, got {n}")
        if self.topology == "parallel":
            _check_choice("merge", self.merge, MERGES)
        elif self.merge is not None:
            raise SpecError(f"merge={self.merge!r} is only allowed for 'parallel', not {self.topology!r}")
        if self.topology == "fused":
            self._check_fusable()

    def _check_fusable(self) -> None:
        for branch in self.branches:
            if not get_attention(branch.type).scored:
                raise SpecError(
                    f"{branch.type!r} attention has no score matrix and cannot be fused; "
                    f"fusable types: {', '.join(fusable_types())}"
                )
        shapes = {(b.heads, b.kv) for b in self.branches}
        if len(shapes) > 1:
            raise SpecError(
                "fused scorers mix into one distribution per head, so all need the same "
                f"heads and kv_heads, got {sorted(shapes)}"
            )

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
        _check_int("ff_mult", self.ff_mult, 1)
        _check_choice("activation", self.activation, ACTIVATIONS)

    def summary(self) -> str:
        return self.mixer.summary()


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        _check_int("d_model", self.d_model, 1)
        _check_int("patch", self.patch, 1)
        if not self.blocks:
            raise SpecError("blocks must hold at least 1 block, got 0")
        _check_choice("position", self.position, POSITIONS)
        _check_choice("readout", self.readout, READOUTS)
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
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

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
            _build(BlockSpec, b, "blocks[]", mixer=lambda m: _build(
                MixerSpec, m, "mixer", branches=lambda bs: tuple(_build(AttentionSpec, a, "branches[]") for a in bs)))
            for b in _require_list(data, "blocks")
        ]
        data["blocks"] = tuple(blocks)
        return _build(cls, data, "arch")

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
        """One line such as ``2x parallel[dot/h4 + additive/h1] merge=gate | d=64 pool=attention``."""
        groups: list[tuple[int, str]] = []
        for block in self.blocks:
            text = block.summary()
            if groups and groups[-1][1] == text:
                groups[-1] = (groups[-1][0] + 1, text)
            else:
                groups.append((1, text))
        mixers = " ; ".join(f"{n}x {text}" for n, text in groups)
        patch = f" patch={self.patch}" if self.patch > 1 else ""
        return f"{mixers} | d={self.d_model} pos={self.position} pool={self.readout}{patch}"


def _require_list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"{key} must be a list, got {value!r}")
    return list(value)


def _build(cls: type, data: Any, where: str, **convert: Any) -> Any:
    """Construct dataclass ``cls`` from a dict, refusing unknown keys by name."""
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


def fusable_types() -> tuple[str, ...]:
    from nas.attention import attention_names

    return tuple(n for n in attention_names() if get_attention(n).scored)


@dataclass(frozen=True)
class InputSpec:
    """What the data looks like, as far as building a model needs to know.

    ``features`` is the size of a continuous step, ``vocab`` the number of token
    ids (exactly one of them is non-zero). ``per_token`` asks for one prediction
    per position (sequence labelling, e.g. associative recall) instead of a pooled one.
    """

    seq_len: int
    num_outputs: int
    features: int = 0
    vocab: int = 0
    target: str = "classification"
    per_token: bool = False

    def __post_init__(self) -> None:
        _check_int("seq_len", self.seq_len, 1)
        _check_int("num_outputs", self.num_outputs, 1)
        _check_int("features", self.features, 0)
        _check_int("vocab", self.vocab, 0)
        _check_choice("target", self.target, TARGETS)
        if (self.features > 0) == (self.vocab > 0):
            raise SpecError(
                f"exactly one of features={self.features} and vocab={self.vocab} must be > 0"
            )

    @property
    def kind(self) -> str:
        return "tokens" if self.vocab else "continuous"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "InputSpec":
        return _build(cls, data, "input")


__all__ = [
    "SCHEMA_VERSION",
    "ArchSpec",
    "AttentionSpec",
    "BlockSpec",
    "InputSpec",
    "MixerSpec",
    "SpecError",
    "fusable_types",
]
