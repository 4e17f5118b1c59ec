"""Search spaces: a YAML file of choices, and the one bridge from those choices to Optuna.

>>> space = SearchSpace.from_file("search_spaces/tiny.yaml")
>>> spec, train = space.sample(trial, task.input_spec)   # inside an Optuna objective

The schema (sections ``model``, ``mixer``, ``attention``, ``train``) is in
:data:`SCHEMA` and documented in ``docs/search_spaces.md``. Parameter names
follow the structure, so that Optuna's multivariate TPE with ``group=True`` can
group the parameters that occur together: ``b1.parallel.a0.heads`` is block 1's
first parallel branch's heads, and exists only in trials where block 1 is parallel.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from nas.models.attention import attention_names, get_attention
from nas.models.embeddings import embedding_names, fits, get_embedding
from nas.models.embeddings.conv import NORMS as STEM_NORMS
from nas.search.choices import Choice, Key, SpaceError, parse_choice
from nas.search.portfolio import Candidate, Preset, parse_portfolio
from nas.data.spec import InputSpec
from nas.models.spec import (ACTIVATIONS, MERGES, POSITIONS, READOUTS, TOPOLOGIES, ArchSpec, AttentionSpec, BlockSpec,
                             EmbeddingSpec, MixerSpec)
from nas.training.augment import AUGMENTS
from nas.training.trainer import TrainConfig

SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"

SCHEMA: dict[str, dict[str, Key]] = {
    "model": {
        "d_model": Key("int", 64, 1),
        "depth": Key("int", 2, 1),
        "ff_mult": Key("int", 2, 1),
        "activation": Key("name", "gelu", names=lambda: ACTIVATIONS),
        "position": Key("name", "sinusoidal", names=lambda: POSITIONS),
        "readout": Key("name", "mean", names=lambda: READOUTS),
        "patch": Key("int", 1, 1),
        "max_tokens": Key("int", 256, 1),
        "embedding": Key("name", "linear", names=embedding_names),
        "stem_layers": Key("int", 1, 1),
        "stem_kernel": Key("int", 3, 1),
        "stem_channels": Key("int", None, 1, ranges=False, null="d_model"),
        "stem_norm": Key("name", "layer", names=lambda: STEM_NORMS),
        "pattern": Key("int", 1, 1),
        "dropout": Key("float", 0.0, 0, 1),
    },
    "mixer": {
        "topology": Key("name", "single", names=lambda: TOPOLOGIES),
        "branches": Key("int", 2, 2),
        "merge": Key("name", "sum", names=lambda: MERGES),
        "scorers": Key("int", 2, 2),
    },
    "attention": {
        "type": Key("name", "dot", names=attention_names),
        "heads": Key("int", 4, 1, ranges=False),
        "kv_heads": Key("int", None, 1, ranges=False, null="heads"),
        "window": Key("int", 4, 1),
    },
    "train": {
        "lr": Key("float", 1e-3, 0, low_open=True),
        "weight_decay": Key("float", 0.01, 0),
        "batch_size": Key("int", 64, 1),
        "warmup": Key("float", 0.05, 0, 1),
        "augment": Key("name", "none", names=lambda: AUGMENTS),
    },
}


def _embeds(name: str, input_spec: InputSpec | None) -> bool:
    return get_embedding(name).steps if input_spec is None else fits(name, input_spec)


TOKEN_EXAMPLE = InputSpec(seq_len=64, vocab=64, num_outputs=64, per_token=True)
"""The input a portfolio entry for token inputs only is checked against when the space is read."""


def _scored(name: str) -> bool:
    return get_attention(name).scored


@dataclass(frozen=True)
class SearchSpace:
    """Validated choices for every key of :data:`SCHEMA`, by dotted path (``attention.heads``)."""

    name: str
    choices: dict[str, Choice]
    source: str = "<dict>"
    portfolio: tuple[Candidate, ...] = ()  # run first in a new study (nas.search.portfolio)

    # --- loading ----------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path) -> "SearchSpace":
        """Read and validate a YAML space; errors name the file, the key path, the value and the rule."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as err:
            raise SpaceError(f"cannot read search space {str(path)!r}: {err.strerror}") from None
        except yaml.YAMLError as err:
            raise SpaceError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
        return cls.from_dict(data, name=path.stem, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, name: str = "custom", source: str = "<dict>") -> "SearchSpace":
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise SpaceError(f"{source}: a search space must be a mapping of sections, got {data!r}")
        unknown = sorted(set(data) - set(SCHEMA) - {"portfolio"})
        if unknown:
            raise SpaceError(f"{source}: unknown section(s) {unknown}; allowed: {', '.join(SCHEMA)}, portfolio")
        choices: dict[str, Choice] = {}
        for section, keys in SCHEMA.items():
            given = data.get(section) or {}
            if not isinstance(given, dict):
                raise SpaceError(f"{source}: {section} must be a mapping of keys, got {given!r}")
            unknown = sorted(set(given) - set(keys))
            if unknown:
                raise SpaceError(f"{source}: unknown key(s) {[f'{section}.{k}' for k in unknown]}; "
                                 f"allowed in {section}: {', '.join(keys)}")
            for key, rule in keys.items():
                path = f"{section}.{key}"
                raw = given.get(key, rule.default)
                try:
                    choices[path] = parse_choice(path, raw, rule)
                except ValueError as err:
                    raise SpaceError(f"{source}: {path}={raw!r}: {err}") from None
        space = cls(name, choices, source, parse_portfolio(data.get("portfolio"), SCHEMA, source))
        space._check_combinations()
        for candidate in space.portfolio:  # every entry must build, before any trial runs
            try:
                space.portfolio_params(None if space._fits(candidate, None) else TOKEN_EXAMPLE, candidate)
            except ValueError as err:
                raise SpaceError(f"{source}: portfolio entry {candidate.name!r} is not a valid architecture: "
                                 f"{str(err).removeprefix(f'portfolio entry {candidate.name!r}: ')}") from None
        return space

    def portfolio_params(self, input_spec: InputSpec | None = None,
                         candidate: Candidate | None = None) -> list[tuple[str, dict[str, Any]]]:
        """``(name, Optuna parameters)`` of each portfolio entry (or of ``candidate``) for data like ``input_spec``;
        an entry whose embedding cannot read such data is left out (a convolutional stem has no token ids)."""
        entries = []
        for entry in self.portfolio if candidate is None else (candidate,):
            if not self._fits(entry, input_spec):
                continue
            preset = Preset(entry, lambda path: SCHEMA[path.split(".")[0]][path.split(".")[1]].default)
            self.sample(preset, input_spec)
            entries.append((entry.name, preset.params))
        return entries

    @staticmethod
    def _fits(entry: Candidate, input_spec: InputSpec | None) -> bool:
        """Whether the entry's embedding reads such inputs: a token model is no candidate for a series."""
        return _embeds(entry.values.get("model.embedding", "linear"), input_spec)

    def _check_combinations(self) -> None:
        """Refuse files where some draw could not become a valid spec, before any trial runs."""
        c, where = self.choices, self.source
        for d in self._options("model.d_model"):
            if not self._heads_for(d):
                raise SpaceError(f"{where}: model.d_model={d} has no divisor among attention.heads="
                                 f"{list(c['attention.heads'].values)}; every d_model needs one (heads must divide d_model)")
        for h in c["attention.heads"].values:
            if not self._kv_for(h):
                raise SpaceError(f"{where}: attention.heads={h} has no divisor among attention.kv_heads="
                                 f"{list(c['attention.kv_heads'].values)}; add null (one kv head per head) or 1")
        types = c["attention.type"].values
        if "fused" in c["mixer.topology"].values and not any(map(_scored, types)):
            raise SpaceError(f"{where}: mixer.topology offers 'fused' but attention.type={list(types)} has no "
                             f"score-based type to fuse; add one of {', '.join(filter(_scored, attention_names()))}")
        if len(self._options("model.max_tokens")) != 1:
            raise SpaceError(f"{where}: model.max_tokens={c['model.max_tokens'].to_data()!r} is a budget, not a "
                             f"choice; give one number of tokens")
        stems = [e for e in c["model.embedding"].values if e != "linear"]
        for kernel, kind in ((k, e) for k in self._options("model.stem_kernel") for e in stems):
            try:
                EmbeddingSpec(kind, (kernel,))
            except ValueError as err:
                raise SpaceError(f"{where}: model.stem_kernel={kernel}: {err}") from None
        positions = c["model.position"].values
        if not any(self._position_suits_all(p) for p in positions):
            raise SpaceError(f"{where}: model.position={list(positions)}: no choice suits every attention type and "
                             f"head size the space can draw (ALiBi needs score-based types, rotary dot-product types "
                             f"and even head sizes); add one of learned, sinusoidal, none")

    def largest_batch(self) -> int:
        """The largest batch a trial may draw: the fewest steps an epoch can take, which the budget plans for."""
        return int(max(self._options("train.batch_size")))

    def _options(self, path: str) -> tuple[Any, ...]:
        return self.choices[path].options() or ()

    def _heads_for(self, d_model: int) -> tuple[int, ...]:
        return tuple(h for h in self.choices["attention.heads"].values if d_model % h == 0)

    def _kv_for(self, heads: int) -> tuple[int | None, ...]:
        """kv_heads allowed under ``heads``; ``kv_heads == heads`` is the same model as null, so it becomes null."""
        allowed: list[int | None] = []
        for kv in self.choices["attention.kv_heads"].values:
            kv = None if kv == heads else kv
            if (kv is None or heads % kv == 0) and kv not in allowed:
                allowed.append(kv)
        return tuple(allowed)

    def _position_suits_all(self, position: str) -> bool:
        types = self.choices["attention.type"].values
        if position == "alibi":
            return all(map(_scored, types))
        if position == "rotary":
            even = all((d // h) % 2 == 0 for d in self._options("model.d_model") for h in self._heads_for(d))
            return even and all(get_attention(t).rotary for t in types)
        return True

    # --- identity ---------------------------------------------------------------

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Every key with its choice (defaults filled in): what the study stores and compares."""
        data: dict[str, dict[str, Any]] = {}
        for path, choice in self.choices.items():
            section, key = path.split(".")
            data.setdefault(section, {})[key] = choice.to_data()
        return data

    def renamed_against(self, origin: dict[str, dict[str, Any]]) -> "SearchSpace":
        """This space with every choice that differs from ``origin`` (a :meth:`to_dict`) tagged in its names.

        Optuna keeps one distribution per parameter name for a whole study, so a
        study resumed with a changed space (``--allow-space-change``) names its
        changed choices after their new values: ``d_model@[32,64,128]``.
        """
        choices = {}
        for path, choice in self.choices.items():
            section, key = path.split(".")
            data = choice.to_data()
            same = origin.get(section, {}).get(key) == data
            choices[path] = choice if same else replace(choice, tag="@" + json.dumps(data, separators=(",", ":"), sort_keys=True))
        return SearchSpace(self.name, choices, self.source, self.portfolio)

    def hash(self) -> str:
        """Fingerprint of the choices, blind to comments, key order and spelled-out defaults."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    # --- sampling ---------------------------------------------------------------

    def sample(self, trial: Any, input_spec: InputSpec | None = None) -> tuple[ArchSpec, TrainConfig]:
        """Draw one candidate: the only place that calls ``trial.suggest_*``.

        ``input_spec`` decides whether ``patch`` applies (continuous, not
        per-token inputs only); without it patching is drawn as for continuous data.
        Conditional parameters exist only where they mean something; a name
        ending in ``[...]`` lists the values that earlier choices left allowed.
        """
        draw = self._draw
        d_model = draw(trial, "d_model", "model.d_model")
        depth = draw(trial, "depth", "model.depth")
        ff_mult = draw(trial, "ff_mult", "model.ff_mult")
        activation = draw(trial, "activation", "model.activation")
        distinct = draw(trial, "pattern", "model.pattern", tuple(dict.fromkeys(
            min(p, depth) for p in self._options("model.pattern"))))
        mixers = [self._mixer(trial, i, d_model) for i in range(distinct)]
        blocks = tuple(BlockSpec(mixers[i % distinct], ff_mult, activation) for i in range(depth))
        modules = [m for block in blocks for m in block.mixer.branches]
        positions = tuple(p for p in self.choices["model.position"].values if _position_fits(p, modules, d_model))
        position = draw(trial, "position", "model.position", positions)
        readout = draw(trial, "readout", "model.readout")
        patchable = input_spec is None or (input_spec.kind == "continuous" and not input_spec.per_token)
        classifies = input_spec is None or input_spec.target == "classification"  # augmentation keeps classes only
        patch = draw(trial, "patch", "model.patch", self._patches(input_spec)) if patchable else 1
        embedding = self._embedding(trial, input_spec)
        dropout = draw(trial, "dropout", "model.dropout")
        spec = ArchSpec(d_model, blocks, position, readout, patch, dropout, embedding)
        train = TrainConfig(
            lr=draw(trial, "lr", "train.lr"),
            weight_decay=draw(trial, "weight_decay", "train.weight_decay"),
            batch_size=draw(trial, "batch_size", "train.batch_size"),
            warmup=draw(trial, "warmup", "train.warmup"),
            augment=draw(trial, "augment", "train.augment") if patchable and classifies else "none",
        )
        return spec, train

    def _patches(self, input_spec: InputSpec | None) -> tuple[int, ...] | None:
        """The patch lengths that keep a series within ``model.max_tokens`` tokens; when none of the listed ones
        does, the shortest that does: a long series never reaches attention as thousands of tokens."""
        options = self._options("model.patch")
        if input_spec is None or not options:
            return None
        budget = self._options("model.max_tokens")[0]
        fitting = tuple(p for p in options if math.ceil(input_spec.seq_len / p) <= budget)
        return fitting or (math.ceil(input_spec.seq_len / budget),)

    def check_input(self, input_spec: InputSpec) -> None:
        """Refuse, before a study is touched, a space none of whose embeddings can read the task's input."""
        listed = self._options("model.embedding")
        if not any(_embeds(e, input_spec) for e in listed):
            able = ", ".join(repr(e) for e in embedding_names() if fits(e, input_spec))
            what = "token ids" if input_spec.kind == "tokens" else "continuous steps"
            raise SpaceError(f"{self.source}: model.embedding={list(listed)} has none that reads {what}; "
                             f"list one of {able}")

    def _embedding(self, trial: Any, input_spec: InputSpec | None) -> EmbeddingSpec:
        """One of the listed embeddings that can read the input (without an input: those that read steps). A study
        has one task, so the narrowing never changes within it, and the parameter keeps its plain name."""
        allowed = tuple(e for e in self._options("model.embedding") if _embeds(e, input_spec))
        if not allowed:
            if input_spec is not None:
                self.check_input(input_spec)
            return EmbeddingSpec()
        kind = self._draw(trial, "embedding", "model.embedding", allowed, stable=True)
        if kind == "linear":
            return EmbeddingSpec(kind)
        layers = self._draw(trial, "stem.layers", "model.stem_layers")
        kernels = tuple(self._draw(trial, f"stem.k{j}", "model.stem_kernel") for j in range(layers))
        if kind != "conv":
            return EmbeddingSpec(kind, kernels)
        channels = self._draw(trial, "stem.channels", "model.stem_channels")
        return EmbeddingSpec(kind, kernels, channels, self._draw(trial, "stem.norm", "model.stem_norm"))

    def _draw(self, trial: Any, name: str, path: str, options: tuple[Any, ...] | None = None,
              stable: bool = False) -> Any:
        if isinstance(trial, Preset):
            return trial.choose(self.choices[path], name, path, options, stable)
        return self.choices[path].draw(trial, name, options, stable)

    def _mixer(self, trial: Any, block: int, d_model: int) -> MixerSpec:
        topology = self._draw(trial, f"b{block}.topology", "mixer.topology")
        prefix = f"b{block}.{topology}"
        if topology == "fused":
            # Fused scorers share one distribution per head, hence one heads/kv_heads for all.
            count = self._draw(trial, f"{prefix}.scorers", "mixer.scorers")
            heads, kv = self._heads(trial, prefix, d_model)
            scored = tuple(filter(_scored, self.choices["attention.type"].values))
            scorers = []
            for j in range(count):
                name = self._draw(trial, f"{prefix}.s{j}.type", "attention.type", scored, stable=True)
                scorers.append(AttentionSpec(name, heads, kv, self._window(trial, f"{prefix}.s{j}", name)))
            return MixerSpec("fused", tuple(scorers))
        if topology == "single":
            return MixerSpec("single", (self._attention(trial, prefix, d_model),))
        count = self._draw(trial, f"{prefix}.branches", "mixer.branches")
        merge = self._draw(trial, f"{prefix}.merge", "mixer.merge") if topology == "parallel" else None
        branches = tuple(self._attention(trial, f"{prefix}.a{j}", d_model) for j in range(count))
        return MixerSpec(topology, branches, merge)

    def _attention(self, trial: Any, prefix: str, d_model: int) -> AttentionSpec:
        name = self._draw(trial, f"{prefix}.type", "attention.type")
        heads, kv = self._heads(trial, prefix, d_model)
        return AttentionSpec(name, heads, kv, self._window(trial, prefix, name))

    def _heads(self, trial: Any, prefix: str, d_model: int) -> tuple[int, int | None]:
        heads = self._draw(trial, f"{prefix}.heads", "attention.heads", self._heads_for(d_model))
        return heads, self._draw(trial, f"{prefix}.kv_heads", "attention.kv_heads", self._kv_for(heads))

    def _window(self, trial: Any, prefix: str, name: str) -> int | None:
        return self._draw(trial, f"{prefix}.window", "attention.window") if get_attention(name).windowed else None


def _position_fits(position: str, modules: list[AttentionSpec], d_model: int) -> bool:
    if position == "alibi":
        return all(_scored(m.type) for m in modules)
    if position == "rotary":
        return all(get_attention(m.type).rotary and (d_model // m.heads) % 2 == 0 for m in modules)
    return True


def space_names(spaces_dir: Path = SPACES_DIR) -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in spaces_dir.glob("*.yaml")))


def load_space(name_or_path: str | Path, spaces_dir: Path = SPACES_DIR) -> SearchSpace:
    """A space by file path, or by name in ``search_spaces/`` (``tiny`` means ``search_spaces/tiny.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return SearchSpace.from_file(path)
    named = spaces_dir / f"{name_or_path}.yaml"
    if named.is_file():
        return SearchSpace.from_file(named)
    raise SpaceError(f"search space {str(name_or_path)!r} is neither a file nor a name in {spaces_dir}; "
                     f"allowed: {', '.join(space_names(spaces_dir))} or a path to a .yaml file")


__all__ = ["SCHEMA", "SPACES_DIR", "SearchSpace", "SpaceError", "load_space", "space_names"]
