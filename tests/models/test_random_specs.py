"""A broad random sample of valid architectures: all round-trip, build and train a step."""

from __future__ import annotations

import random

import torch

from nas import ArchSpec, InputSpec, build_model
from nas.models.attention import attention_names
from nas.models.embeddings import embedding_names, get_embedding
from nas.models.topologies import topology_names
from tests.support.specs import random_spec

N_SPECS = 500


def test_random_specs_round_trip_build_and_run_forward_backward():
    rng = random.Random(0)
    continuous = InputSpec(seq_len=10, features=3, num_outputs=4)
    tokens = InputSpec(seq_len=10, vocab=11, num_outputs=4)
    x_cont = torch.randn(2, 10, 3)
    x_tok = torch.randint(0, 11, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    topologies, types, embeddings = set(), set(), set()
    for i in range(N_SPECS):
        spec = random_spec(rng)
        assert ArchSpec.from_json(spec.to_json()) == spec
        family = get_embedding(spec.embedding.type)
        use_tokens = spec.patch == 1 and family.tokens and (i % 2 or not family.steps)
        model = build_model(spec, tokens if use_tokens else continuous, seed=i)
        out = model(x_tok if use_tokens else x_cont, mask)
        assert out.shape == (2, 4) and torch.isfinite(out).all(), spec.summary()
        out.square().mean().backward()
        topologies |= {b.mixer.topology for b in spec.blocks}
        types |= {a.type for b in spec.blocks for a in b.mixer.branches}
        embeddings.add(spec.embedding.type)
    assert topologies == set(topology_names()) and types == set(attention_names())
    assert embeddings == set(embedding_names())
