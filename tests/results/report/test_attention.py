"""Attention maps: one per attention module of a block, fed exactly what the module sees in the forward pass."""

from __future__ import annotations

import pytest
import torch

from nas.models.model import build_model
from nas.results.report.attention import attention_maps
from nas.data.spec import InputSpec
from nas.models.spec import ArchSpec, AttentionSpec as A, BlockSpec, MixerSpec

INPUT = InputSpec(seq_len=6, features=3, num_outputs=2)
MIXERS = {
    "serial": MixerSpec("serial", (A("dot", 2), A("cosine", 1))),
    "parallel": MixerSpec("parallel", (A("linear", 2), A("local", 1, window=1)), merge="gate"),
    "fused": MixerSpec("fused", (A("dot", 2), A("additive", 2))),
}
LABELS = {"serial": ["dot/h2", "cosine/h1"], "parallel": ["linear/h2", "local(w1)/h1"],
          "fused": ["fused[dot/h2 + additive/h2]"]}


def batch():
    x = torch.randn(3, 6, 3, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False
    return x, mask


@pytest.mark.parametrize("topology", sorted(MIXERS))
def test_every_module_of_the_block_gives_a_distribution_over_real_keys(topology):
    spec = ArchSpec(d_model=8, blocks=(BlockSpec(MIXERS[topology]), BlockSpec(MIXERS[topology])))
    x, mask = batch()
    maps = attention_maps(build_model(spec, INPUT, seed=0), x, mask, block=1)
    assert maps.labels == LABELS[topology] and maps.lengths == [6, 4, 6]
    for weights, label in zip(maps.weights, maps.labels):
        assert weights.shape == (3, int(label.split("/h")[1][0]), 6, 6)
        assert torch.allclose(weights.sum(-1), torch.ones(()), atol=1e-5)
        assert weights[1, :, :4, 4:].abs().max() == 0  # real queries give padded keys no weight


def test_the_map_is_computed_from_the_input_the_module_really_gets():
    spec = ArchSpec(d_model=8, blocks=(BlockSpec(MIXERS["serial"]),), position="learned")
    model = build_model(spec, INPUT, seed=0).eval()
    x, mask = batch()
    maps = attention_maps(model, x, mask)
    with torch.no_grad():
        h, _ = model.embedding(x, mask)
        h = model.blocks[0].mixer.stages[0](model.position(h), mask)  # after the first module's residual
        second = model.blocks[0].mixer.stages[1]
        expected = second.module.attention_weights(second.norm(h), mask)
    assert torch.equal(maps.weights[1], expected)


def test_a_block_that_does_not_exist_is_refused():
    model = build_model(ArchSpec(d_model=8, blocks=(BlockSpec(MIXERS["serial"]),)), INPUT)
    with pytest.raises(ValueError, match=r"block=2 does not exist; the model has blocks 0..0"):
        attention_maps(model, *batch(), block=2)
