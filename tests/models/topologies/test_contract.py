"""Every registered topology, in mixers generated from its own rules, obeys the mixer contract.

Parametrised over the registry: a new topology is tested here without anyone listing it.
"""

from __future__ import annotations

import pytest
import torch

from nas.models.attention import get_attention
from nas.models.topologies import get_topology, topology_names
from tests.conftest import assert_every_parameter_learns, padded_batch, run_on, scramble_padding, tolerance
from tests.support.specs import example_mixers

D = 16
EXAMPLES = [pytest.param(spec, id=spec.summary()) for name in topology_names() for spec in example_mixers(name)]
# A windowed module sees positions through its window, so it is not permutation equivariant.
EQUIVARIANT = [p for p in EXAMPLES if not any(get_attention(b.type).windowed for b in p.values[0].branches)]


def build(spec, device: str = "cpu"):
    return get_topology(spec.topology).build(spec, D, "none", 0.0).to(device).eval()


@pytest.mark.parametrize("name", topology_names())
def test_every_topology_has_examples_for_each_merge_it_allows(name):
    examples = example_mixers(name)
    assert examples, f"no mixer generated from {name!r}'s rules passes its checks; extend tests/support/specs.py"
    assert {m.merge for m in examples} == set(get_topology(name).merges or (None,))


@pytest.mark.parametrize("spec", EXAMPLES)
def test_shape_finite_and_gradients(spec, device):
    module = build(spec, device)
    x, mask = padded_batch(dim=D)
    out = run_on(module, x, mask, device)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert_every_parameter_learns(module, out)


@pytest.mark.parametrize("spec", EXAMPLES)
def test_padded_positions_change_nothing(spec, device):
    module = build(spec, device)
    x, mask = padded_batch(dim=D)
    with torch.no_grad():
        clean, noisy = run_on(module, x, mask, device), run_on(module, scramble_padding(x, mask), mask, device)
    real, tol = mask.to(device), tolerance(device)
    torch.testing.assert_close(noisy[real].float(), clean[real].float(), atol=tol, rtol=tol)
    assert torch.isfinite(noisy).all(), "padded tokens must stay finite so later blocks stay finite"


@pytest.mark.parametrize("spec", EQUIVARIANT)
def test_permutation_equivariant_without_positions(spec, device):
    module = build(spec, device)
    x, _ = padded_batch(dim=D)
    full = torch.ones(x.shape[:2], dtype=torch.bool)
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        permuted, out = run_on(module, x[:, perm], full, device), run_on(module, x, full, device)
    tol = tolerance(device)
    torch.testing.assert_close(permuted.float(), out[:, perm].float(), atol=tol, rtol=tol)
