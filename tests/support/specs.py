"""Valid specs drawn from the registries' own rules: random ArchSpecs for property tests, example mixers and
embeddings for contract tests, so that a newly registered topology or embedding is drawn without anyone listing it."""

from __future__ import annotations

import random

from nas.models.attention import attention_names, get_attention
from nas.models.embeddings import embedding_names, get_embedding
from nas.models.spec import ArchSpec, AttentionSpec, BlockSpec, EmbeddingSpec, MixerSpec, SpecError
from nas.models.topologies import get_topology, topology_names

MAX_BRANCHES = 3  # the most branches drawn for a topology without an upper limit
# Shared grouped-query heads on every branch (what fused needs), and a different layout on each branch.
EXAMPLE_LAYOUTS = (((4, 2),), ((4, None), (1, None), (2, 1)))
# Candidate fields of an EmbeddingSpec; each embedding's examples are those its own rules accept.
EMBEDDING_CANDIDATES = ({}, {"kernels": (3,)}, {"kernels": (5, 3), "channels": 8}, {"kernels": (9, 7, 1)},
                        {"channels": 8}, {"kernels": (5, 3), "norm": "batch"})


def branch_counts(topology: str) -> list[int]:
    rules = get_topology(topology)
    return sorted({rules.min_branches, max(rules.min_branches, min(rules.max_branches or MAX_BRANCHES, MAX_BRANCHES))})


def random_attention(rng: random.Random, d_model: int, layout: tuple[int, int | None] | None = None,
                     types=None) -> AttentionSpec:
    name = rng.choice(types or attention_names())
    if layout is None:
        heads = rng.choice([h for h in (1, 2, 4, 8) if d_model % h == 0])
        layout = (heads, rng.choice([None] + [k for k in (1, 2) if heads % k == 0]))
    window = rng.randint(1, 4) if get_attention(name).windowed else None
    return AttentionSpec(name, layout[0], layout[1], window)


def random_mixer(rng: random.Random, d_model: int) -> MixerSpec:
    """A random registered topology, with branch count and merge within its rules, redrawn until its checks pass."""
    name = rng.choice(topology_names())
    rules = get_topology(name)
    while True:
        n = rng.choice(range(branch_counts(name)[0], branch_counts(name)[-1] + 1))
        first = random_attention(rng, d_model)
        shared = (first.heads, first.kv_heads) if rng.random() < 0.5 else None  # some topologies need one layout
        branches = (first, *(random_attention(rng, d_model, shared) for _ in range(n - 1)))
        merge = rng.choice(rules.merges) if rules.merges else None
        try:
            return MixerSpec(name, branches, merge)
        except SpecError:
            continue


def random_embedding(rng: random.Random) -> EmbeddingSpec:
    """A random registered embedding: random fields when its rules take them, else its defaults (about half linear)."""
    while True:
        name = rng.choice(embedding_names())
        kernels = tuple(rng.choice((1, 3, 5, 7, 9)) for _ in range(rng.randint(1, 3)))
        for fields in ({"kernels": kernels, "channels": rng.choice((None, 4, 8))}, {}):
            try:
                return EmbeddingSpec(name, **fields)
            except SpecError:
                continue


def random_spec(rng: random.Random) -> ArchSpec:
    """Draws until the positional choice fits every module (e.g. no ALiBi with linear)."""
    while True:
        d_model = rng.choice([8, 16, 24, 32])
        blocks = tuple(
            BlockSpec(random_mixer(rng, d_model), rng.randint(1, 4), rng.choice(("gelu", "relu", "swiglu")))
            for _ in range(rng.randint(1, 3))
        )
        embedding = random_embedding(rng)
        try:
            return ArchSpec(
                d_model=d_model,
                blocks=blocks,
                position=rng.choice(("learned", "sinusoidal", "rotary", "alibi", "none")),
                readout=rng.choice(("mean", "first", "attention")),
                patch=rng.choice((1, 1, 2, 3)) if get_embedding(embedding.type).steps else 1,  # ids are not patched
                dropout=rng.choice((0.0, 0.1)),
                embedding=embedding,
            )
        except SpecError:
            continue


def example_mixers(topology: str, per_case: int = 2) -> list[MixerSpec]:
    """Valid mixers of ``topology`` built from its own rules (d_model 16).

    For every branch count it takes (up to 3) and every merge it allows, the first
    ``per_case`` mixers its checks accept, walking on through rotations of the
    attention types (so the cases cover different types) and alternating a shared
    and a mixed head layout.
    """
    types, rules, found = attention_names(), get_topology(topology), []
    rotation = 0
    for n in branch_counts(topology):
        for merge in rules.merges or (None,):
            accepted = 0
            for rotation in range(rotation, rotation + len(types)):
                names = [types[(rotation + i) % len(types)] for i in range(n)]
                for layout in EXAMPLE_LAYOUTS[len(found) % 2:] + EXAMPLE_LAYOUTS[:len(found) % 2]:
                    try:
                        found.append(MixerSpec(topology, tuple(_branch(name, layout[i % len(layout)])
                                                               for i, name in enumerate(names)), merge))
                    except SpecError:
                        continue
                    accepted += 1
                    break
                if accepted == per_case:
                    break
            rotation += 1
    return found


def _branch(name: str, layout: tuple[int, int | None]) -> AttentionSpec:
    return AttentionSpec(name, layout[0], layout[1], 2 if get_attention(name).windowed else None)


def example_embeddings(name: str) -> list[EmbeddingSpec]:
    """The EmbeddingSpecs of ``name`` among :data:`EMBEDDING_CANDIDATES` that its own rules accept."""
    found = []
    for fields in EMBEDDING_CANDIDATES:
        try:
            found.append(EmbeddingSpec(name, **fields))
        except SpecError:
            continue
    return found
