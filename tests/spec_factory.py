"""Random valid ArchSpecs, drawn from everything the spec allows, for property tests."""

from __future__ import annotations

import random

from nas.attention import attention_names, get_attention
from nas.spec import ArchSpec, AttentionSpec, BlockSpec, MixerSpec, SpecError

TOPOLOGIES = ("single", "parallel", "serial", "fused")


def random_attention(rng: random.Random, d_model: int, heads: int | None = None, types=None) -> AttentionSpec:
    name = rng.choice(types or attention_names())
    heads = heads or rng.choice([h for h in (1, 2, 4, 8) if d_model % h == 0])
    kv = rng.choice([None] + [k for k in (1, 2) if heads % k == 0])
    window = rng.randint(1, 4) if get_attention(name).windowed else None
    return AttentionSpec(name, heads, kv, window)


def random_mixer(rng: random.Random, d_model: int) -> MixerSpec:
    topology = rng.choice(TOPOLOGIES)
    if topology == "single":
        return MixerSpec("single", (random_attention(rng, d_model),))
    n = rng.randint(2, 3)
    if topology == "fused":
        scored = [t for t in attention_names() if get_attention(t).scored]
        first = random_attention(rng, d_model, types=scored)
        branches = [first] + [
            AttentionSpec(t, first.heads, first.kv_heads, rng.randint(1, 4) if get_attention(t).windowed else None)
            for t in (rng.choice(scored) for _ in range(n - 1))
        ]
        return MixerSpec("fused", tuple(branches))
    merge = rng.choice(("sum", "concat", "gate")) if topology == "parallel" else None
    return MixerSpec(topology, tuple(random_attention(rng, d_model) for _ in range(n)), merge)


def random_spec(rng: random.Random) -> ArchSpec:
    """Draws until the positional choice fits every module (e.g. no ALiBi with linear)."""
    while True:
        d_model = rng.choice([8, 16, 24, 32])
        blocks = tuple(
            BlockSpec(random_mixer(rng, d_model), rng.randint(1, 4), rng.choice(("gelu", "relu", "swiglu")))
            for _ in range(rng.randint(1, 3))
        )
        try:
            return ArchSpec(
                d_model=d_model,
                blocks=blocks,
                position=rng.choice(("learned", "sinusoidal", "rotary", "alibi", "none")),
                readout=rng.choice(("mean", "first", "attention")),
                patch=rng.choice((1, 1, 2, 3)),
                dropout=rng.choice((0.0, 0.1)),
            )
        except SpecError:
            continue
