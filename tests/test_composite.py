"""Every topology obeys the mixer contract: shape, finiteness, gradients, masking, equivariance."""

from __future__ import annotations

import pytest
import torch

from nas.composite import Block
from nas.spec import AttentionSpec as A, BlockSpec, MixerSpec
from tests.conftest import assert_every_parameter_learns, padded_batch, run_on, scramble_padding, tolerance

D = 16
MIXERS = {
    "single": MixerSpec("single", (A("cosine", 4),)),
    "parallel-sum": MixerSpec("parallel", (A("dot", 4), A("linear", 2)), "sum"),
    "parallel-concat": MixerSpec("parallel", (A("general", 2), A("additive", 1), A("dot", 4, 1)), "concat"),
    "parallel-gate": MixerSpec("parallel", (A("dot", 4), A("additive", 1)), "gate"),
    "serial": MixerSpec("serial", (A("linear", 4, 2), A("dot", 2))),
    "fused": MixerSpec("fused", (A("dot", 4, 2), A("additive", 4, 2), A("cosine", 4, 2), A("general", 4, 2))),
    "fused-local": MixerSpec("fused", (A("dot", 2), A("local", 2, window=2))),
}
EQUIVARIANT = [name for name in MIXERS if "local" not in name]


def block(name: str, device: str = "cpu") -> Block:
    return Block(BlockSpec(MIXERS[name], 2, "swiglu"), D, "none", 0.0).to(device).eval()


@pytest.mark.parametrize("name", MIXERS)
def test_shape_finite_and_gradients(name, device):
    module = block(name, device)
    x, mask = padded_batch(dim=D)
    out = run_on(module, x, mask, device)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert_every_parameter_learns(module, out)


@pytest.mark.parametrize("name", MIXERS)
def test_padded_positions_change_nothing(name, device):
    module = block(name, device)
    x, mask = padded_batch(dim=D)
    with torch.no_grad():
        clean, noisy = run_on(module, x, mask, device), run_on(module, scramble_padding(x, mask), mask, device)
    real, tol = mask.to(device), tolerance(device)
    torch.testing.assert_close(noisy[real].float(), clean[real].float(), atol=tol, rtol=tol)


@pytest.mark.parametrize("name", EQUIVARIANT)
def test_permutation_equivariant_without_positions(name, device):
    module = block(name, device)
    x, _ = padded_batch(dim=D)
    full = torch.ones(x.shape[:2], dtype=torch.bool)
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        permuted, out = run_on(module, x[:, perm], full, device), run_on(module, x, full, device)
    tol = tolerance(device)
    torch.testing.assert_close(permuted.float(), out[:, perm].float(), atol=tol, rtol=tol)


def test_serial_gives_each_module_its_own_residual_and_norm():
    mixer = block("serial").mixer
    assert len(mixer.stages) == 2
    assert all(hasattr(stage, "norm") for stage in mixer.stages)


def test_gate_weights_depend_on_the_token():
    module = block("parallel-gate").mixer.module
    x, _ = padded_batch(dim=D)
    weights = torch.softmax(module.gate(x), dim=-1)
    assert not torch.allclose(weights[0, 0], weights[0, 1])
