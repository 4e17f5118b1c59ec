"""Every registered embedding, in example specs its own rules accept, obeys the embedding contract.

Parametrised over the registry: a new embedding is tested here without anyone listing it.
"""

from __future__ import annotations

import math

import pytest
import torch

from nas import ArchSpec, AttentionSpec as A, BlockSpec, InputSpec, MixerSpec, SpecError, build_model
from nas.models.embeddings import embedding_names, get_embedding
from tests.conftest import assert_every_parameter_learns, padded_batch, run_on, scramble_padding, tolerance
from tests.support.specs import example_embeddings

D, FEATURES, LENGTH = 16, 3, 13
SERIES = InputSpec(seq_len=LENGTH, features=FEATURES, num_outputs=5)
TOKENS = InputSpec(seq_len=LENGTH, vocab=7, num_outputs=5)
LABELLING = InputSpec(seq_len=LENGTH, vocab=7, num_outputs=7, per_token=True)
EXAMPLES = [pytest.param(spec, patch, id=f"{spec.type}-{spec.summary() or 'default'}-patch{patch}")
            for name in embedding_names() for spec in example_embeddings(name)
            for patch in ((1, 3) if get_embedding(name).steps else (1,))]  # token ids are never patched


def arch(embedding, patch: int = 1) -> ArchSpec:
    blocks = (BlockSpec(MixerSpec("parallel", (A("dot", 4), A("local", 2, window=2)), "gate")),)
    return ArchSpec(d_model=D, blocks=blocks, position="learned", patch=patch, embedding=embedding)


def reads(spec) -> InputSpec:
    """The input the contract checks ``spec`` on: series where the family reads steps, else token ids."""
    return SERIES if get_embedding(spec.type).steps else TOKENS


def batch(spec):
    """A padded batch the family reads: sample 1 keeps 7 real steps, sample 2 keeps 4."""
    x, mask = padded_batch(length=LENGTH, dim=FEATURES)
    if reads(spec) is TOKENS:
        x = torch.randint(0, TOKENS.vocab, mask.shape, generator=torch.Generator().manual_seed(0))
    return x, mask


def scramble(x, mask):
    """The batch with other values at every padded step: large noise, or other token ids."""
    if x.dtype.is_floating_point:
        return scramble_padding(x, mask)
    return torch.where(mask, x, torch.randint(0, TOKENS.vocab, x.shape, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("name", embedding_names())
def test_every_embedding_has_an_example_its_rules_accept(name):
    assert example_embeddings(name), f"no candidate fields fit {name!r}'s rules; extend tests/support/specs.py"


@pytest.mark.parametrize("spec,patch", EXAMPLES)
def test_shape_finite_and_gradients(spec, patch, device):
    module = get_embedding(spec.type)(spec, reads(spec), D, patch).to(device)
    x, mask = batch(spec)
    out, out_mask = run_on(module, x, mask, device)
    tokens = math.ceil(LENGTH / patch)
    assert out.shape == (3, tokens, D) and out_mask.shape == (3, tokens)
    assert torch.isfinite(out).all()
    assert out_mask[1].sum() == math.ceil(7 / patch), "a patch is real if any of its steps is"
    assert_every_parameter_learns(module, out)


@pytest.mark.parametrize("spec,patch", EXAMPLES)
def test_padded_steps_change_nothing_in_a_whole_model(spec, patch, device):
    model = build_model(arch(spec, patch), reads(spec), seed=0).to(device).eval()
    assert model.position.table.shape[0] == math.ceil(LENGTH / patch), "one position per token, not per step"
    hidden = []
    model.norm.register_forward_hook(lambda module, args, out: hidden.append(out))  # (B, T', D) after the blocks
    x, mask = batch(spec)
    with torch.no_grad():
        clean, noisy = run_on(model, x, mask, device), run_on(model, scramble(x, mask), mask, device)
    real = model.embedding(x.to(device), mask.to(device))[1]
    tol = tolerance(device)
    torch.testing.assert_close(hidden[1][real].float(), hidden[0][real].float(), atol=tol, rtol=tol)
    torch.testing.assert_close(noisy.float(), clean.float(), atol=tol, rtol=tol)


@pytest.mark.parametrize("spec,patch", EXAMPLES)
def test_whole_model_round_trips_through_json(spec, patch):
    original = arch(spec, patch)
    again = ArchSpec.from_json(original.to_json())
    assert again == original and again.hash() == original.hash()
    first, second = build_model(original, reads(spec), seed=3).eval(), build_model(again, reads(spec), seed=3).eval()
    assert first.state_dict().keys() == second.state_dict().keys()
    x, mask = batch(spec)
    with torch.no_grad():
        torch.testing.assert_close(first(x, mask), second(x, mask), atol=0, rtol=0)


@pytest.mark.parametrize("name", embedding_names())
def test_token_inputs_and_per_token_tasks_are_embedded_or_refused_in_one_line(name):
    spec = example_embeddings(name)[0]
    family = get_embedding(name)
    for inputs, allowed in ((TOKENS, family.tokens), (LABELLING, family.tokens and family.per_token)):
        if allowed:
            model = build_model(arch(spec), inputs, seed=0)
            out = model(torch.randint(0, 7, (2, LENGTH)))
            assert out.shape == ((2, LENGTH, 7) if inputs.per_token else (2, 5))
        else:
            with pytest.raises(SpecError, match=rf"^embedding {name!r} reads continuous steps; token inputs need "
                                                rf"embedding 'linear'(, '\w+')*$"):
                build_model(arch(spec), inputs)


@pytest.mark.parametrize("name", embedding_names())
def test_continuous_steps_are_embedded_or_refused_in_one_line(name):
    spec = example_embeddings(name)[0]
    if get_embedding(name).steps:
        assert build_model(arch(spec), SERIES, seed=0)(torch.randn(2, LENGTH, FEATURES)).shape == (2, 5)
    else:
        with pytest.raises(SpecError, match=rf"^embedding {name!r} reads token ids; continuous steps need "
                                            rf"embedding 'conv', 'linear'$"):
            build_model(arch(spec), SERIES)
