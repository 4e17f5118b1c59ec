"""What each topology does beyond the shared contract: serial's own residuals, parallel's merges, fused's mix."""

from __future__ import annotations

import torch

from nas.models.attention import Attention
from nas.models.blocks import Block
from nas.models.measure import count_parameters
from nas.models.spec import AttentionSpec as A, BlockSpec, MixerSpec
from nas.models.topologies import get_topology
from tests.conftest import padded_batch

D = 16
BRANCHES = (A("dot", 4), A("cosine", 4), A("general", 4))


def mixer(topology: str, merge: str | None = None, branches=BRANCHES):
    spec = MixerSpec(topology, branches, merge)
    return get_topology(topology).build(spec, D, "none", 0.0).eval()


def test_block_builds_its_mixer_by_registry_lookup():
    block = Block(BlockSpec(MixerSpec("serial", BRANCHES[:2]), 2, "swiglu"), D, "none", 0.0)
    assert type(block.mixer) is type(mixer("serial", branches=BRANCHES[:2]))
    assert len(block.attention_modules()) == 2


def test_serial_gives_each_module_its_own_residual_and_norm():
    module = mixer("serial")
    assert len(module.stages) == 3
    assert all(hasattr(stage, "norm") for stage in module.stages)
    assert len({id(stage.norm) for stage in module.stages}) == 3


def test_parallel_sum_adds_the_branch_outputs():
    parallel = mixer("parallel", "sum").module
    x, mask = padded_batch(dim=D)
    with torch.no_grad():
        expected = sum(branch(x, mask) for branch in parallel.branches)
        torch.testing.assert_close(parallel(x, mask), expected)


def test_parallel_concat_projects_every_branch_back_to_the_model_width():
    assert mixer("parallel", "concat").module.project.in_features == len(BRANCHES) * D


def test_gate_weights_depend_on_the_token():
    module = mixer("parallel", "gate").module
    x, _ = padded_batch(dim=D)
    weights = torch.softmax(module.gate(x), dim=-1)
    assert not torch.allclose(weights[0, 0], weights[0, 1])


def test_fused_shares_one_set_of_projections_and_starts_as_an_even_mix():
    fused = mixer("fused")
    attention = [m for m in fused.modules() if isinstance(m, Attention)]
    assert len(attention) == 1, "fused mixes scorers inside ONE attention module"
    weights = torch.softmax(attention[0].scorer.mix_logits, dim=0)  # (scorers, heads, 1, 1)
    assert weights.shape == (3, 4, 1, 1)
    torch.testing.assert_close(weights, torch.full_like(weights, 1 / 3))
    assert count_parameters(fused) < count_parameters(mixer("parallel", "sum"))
