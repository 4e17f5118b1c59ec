"""Every registered attention family, in every head layout and position it accepts, obeys one contract.

Parametrised over the registry: a new family is tested here without anyone listing it.
"""

from __future__ import annotations

import pytest
import torch

from nas.models.attention import attention_names, get_attention
from tests.conftest import assert_every_parameter_learns, padded_batch, run_on as run, scramble_padding, tolerance

D_MODEL = 16
HEAD_LAYOUTS = [(1, None), (4, None), (4, 2), (4, 1)]  # single-head, multi-head, grouped-query, multi-query


def _configurations():
    for name in attention_names():
        family = get_attention(name)
        positions = ["none"] + (["rotary"] if family.rotary else []) + (["alibi"] if family.scored else [])
        for heads, kv in HEAD_LAYOUTS:
            for position in positions:
                yield pytest.param(name, heads, kv, position, id=f"{name}-h{heads}kv{kv}-{position}")


CONFIGURATIONS = list(_configurations())


def make(name: str, heads: int, kv: int | None, position: str, window: int = 3, device: str = "cpu"):
    family = get_attention(name)
    module = family(D_MODEL, heads, kv, window if family.windowed else None, position, dropout=0.0)
    return module.to(device).eval()


@pytest.mark.parametrize("name,heads,kv,position", CONFIGURATIONS)
def test_shape_finite_and_gradients(name, heads, kv, position, device):
    module = make(name, heads, kv, position, device=device)
    x, mask = padded_batch(dim=D_MODEL)
    out = run(module, x, mask, device)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert_every_parameter_learns(module, out)


@pytest.mark.parametrize("name,heads,kv,position", CONFIGURATIONS)
def test_padded_positions_change_nothing(name, heads, kv, position, device):
    module = make(name, heads, kv, position, device=device)
    x, mask = padded_batch(dim=D_MODEL)
    with torch.no_grad():
        clean = run(module, x, mask, device)
        noisy = run(module, scramble_padding(x, mask), mask, device)
    real = mask.to(device)
    tol = tolerance(device)
    torch.testing.assert_close(noisy[real].float(), clean[real].float(), atol=tol, rtol=tol)
    assert torch.isfinite(noisy).all(), "padded queries must stay finite so later layers stay finite"


@pytest.mark.parametrize("name", [n for n in attention_names() if not get_attention(n).windowed])
def test_permutation_equivariant_without_positions(name, device):
    module = make(name, 4, 2, "none", device=device)
    x, _ = padded_batch(dim=D_MODEL)
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(5))
    full = torch.ones(x.shape[:2], dtype=torch.bool)
    with torch.no_grad():
        out = run(module, x, full, device)
        out_perm = run(module, x[:, perm], full, device)
    tol = tolerance(device)
    torch.testing.assert_close(out_perm.float(), out[:, perm].float(), atol=tol, rtol=tol)


@pytest.mark.parametrize("name", attention_names())
def test_no_mask_equals_all_true_mask(name):
    module = make(name, 4, None, "none")
    x, _ = padded_batch(dim=D_MODEL)
    with torch.no_grad():
        torch.testing.assert_close(module(x), module(x, torch.ones(x.shape[:2], dtype=torch.bool)))
