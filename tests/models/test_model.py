"""The whole model: reproducible construction, mask-aware embedding and readout, every input kind."""

from __future__ import annotations

import pytest
import torch

from nas import ArchSpec, AttentionSpec as A, BlockSpec, InputSpec, MixerSpec, SpecError, build_model
from tests.conftest import scramble_padding

MIXED = (
    BlockSpec(MixerSpec("parallel", (A("dot", 4), A("general", 1)), "gate")),
    BlockSpec(MixerSpec("fused", (A("dot", 2), A("cosine", 2)))),
)
SERIES = InputSpec(seq_len=13, features=3, num_outputs=5)


def spec(**kwargs) -> ArchSpec:
    return ArchSpec(d_model=16, blocks=kwargs.pop("blocks", MIXED), **kwargs)


def series_batch():
    x = torch.randn(4, 13, 3, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(4, 13, dtype=torch.bool)
    mask[1, 9:] = False
    mask[3, 2:] = False
    return x, mask


def test_same_spec_and_seed_give_identical_parameters_and_leave_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = build_model(spec(), SERIES, seed=7)
    second = build_model(spec(), SERIES, seed=7)
    assert torch.rand(1) == before
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    third = build_model(spec(), SERIES, seed=8)
    assert not torch.equal(first.head.weight, third.head.weight)


@pytest.mark.parametrize("readout", ["mean", "first", "attention"])
@pytest.mark.parametrize("patch", [1, 4])
@pytest.mark.parametrize("position", ["learned", "sinusoidal", "rotary", "alibi", "none"])
def test_padding_never_changes_predictions(readout, patch, position):
    model = build_model(spec(readout=readout, patch=patch, position=position), SERIES, seed=0).eval()
    x, mask = series_batch()
    with torch.no_grad():
        clean, noisy = model(x, mask), model(scramble_padding(x, mask), mask)
    assert clean.shape == (4, 5)
    torch.testing.assert_close(noisy, clean, atol=1e-5, rtol=1e-5)


def test_patching_shortens_long_series():
    osuleaf_like = InputSpec(seq_len=427, features=1, num_outputs=6)
    model = build_model(spec(patch=8, position="learned"), osuleaf_like, seed=0)
    tokens, mask = model.embedding(torch.randn(2, 427, 1), None)
    assert tokens.shape == (2, 54, 16)
    assert mask is not None and mask[:, -1].all() and mask.all()  # the part-filled last patch is real
    assert model(torch.randn(2, 427, 1)).shape == (2, 6)


def test_token_inputs_and_per_token_outputs():
    recall = InputSpec(seq_len=10, vocab=20, num_outputs=20, per_token=True)
    model = build_model(spec(position="rotary"), recall, seed=0)
    out = model(torch.randint(0, 20, (3, 10)))
    assert out.shape == (3, 10, 20)


def test_a_bottleneck_decodes_every_position_from_the_last_token_alone():
    compression = InputSpec(seq_len=10, vocab=20, num_outputs=20, per_token=True, bottleneck=True)
    model = build_model(spec(), compression, seed=0).eval()
    x = torch.randint(0, 20, (3, 10), generator=torch.Generator().manual_seed(0))
    seen = {}

    def scramble_all_but_last(_module, _inputs, h):  # the blocks' output, before the decoder reads it
        seen["h"] = h
        return torch.cat([torch.randn_like(h[:, :-1]), h[:, -1:]], dim=1)

    out = model(x)
    handle = model.norm.register_forward_hook(scramble_all_but_last)
    scrambled = model(x)
    handle.remove()
    assert out.shape == (3, 10, 20)
    assert torch.equal(out, scrambled)  # nothing but the last state reaches the outputs
    assert not torch.allclose(out[:, 0], out[:, 1])  # positions still differ, through the decoder's position signal
    padded = build_model(spec(), InputSpec(seq_len=13, features=3, num_outputs=5, per_token=True, bottleneck=True),
                         seed=0).eval()
    series, mask = series_batch()
    with torch.no_grad():  # a padded series decodes from its last real token, as if it had no padding
        short = padded(series[3:4, :2])  # row 3 has 2 real steps
        torch.testing.assert_close(padded(series, mask)[3:4], short, atol=1e-5, rtol=1e-5)
    with pytest.raises(SpecError, match="bottleneck=True needs per_token=True"):
        InputSpec(seq_len=10, vocab=20, num_outputs=20, bottleneck=True)


def test_regression_head_has_one_output_per_target():
    model = build_model(spec(), InputSpec(seq_len=13, features=3, num_outputs=2, target="regression"), seed=0)
    assert model(series_batch()[0]).shape == (4, 2)


@pytest.mark.parametrize(
    "arch, inputs, message",
    [
        (spec(patch=2), InputSpec(seq_len=8, vocab=5, num_outputs=2), r"patch=2 groups continuous steps; token inputs need patch=1"),
        (spec(patch=2), InputSpec(seq_len=8, features=2, num_outputs=2, per_token=True), r"patch=2 would merge the positions"),
    ],
)
def test_impossible_input_combinations_are_refused(arch, inputs, message):
    with pytest.raises(SpecError, match=message):
        build_model(arch, inputs)


def test_longer_sequence_than_built_for_is_a_clear_error():
    model = build_model(spec(position="learned"), SERIES, seed=0)
    with pytest.raises(ValueError, match="sequence of 20 tokens is longer than the 13"):
        model(torch.randn(1, 20, 3))
