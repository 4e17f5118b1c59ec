"""Each family against its formula, written out the plain way."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import nas.models.attention.additive as additive_module
from nas.models.attention import get_attention
from nas.models.topologies.fused import FusedAttention
from nas.models.spec import AttentionSpec
from tests.conftest import padded_batch

D = 16


def projected(module, x):
    q, k, v = module.project(x)
    return q, module.expand_kv(k), module.expand_kv(v)


def finish(module, heads_out, x):
    return module.out_proj(heads_out.transpose(1, 2).reshape(x.shape))


def softmax_reference(scores, v, mask):
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@pytest.mark.parametrize("kv", [None, 2])
def test_dot_matches_plain_softmax_qk_v(kv):
    module = get_attention("dot")(D, 4, kv).eval()
    x, mask = padded_batch(dim=D)
    q, k, v = projected(module, x)
    expected = finish(module, softmax_reference(q @ k.transpose(-2, -1) / math.sqrt(D // 4), v, mask), x)
    with torch.no_grad():
        torch.testing.assert_close(module(x, mask), expected, atol=1e-5, rtol=1e-5)


def test_dot_runs_on_the_fused_sdpa_kernel_without_building_scores(monkeypatch):
    module = get_attention("dot")(D, 4).eval()
    calls = {"sdpa": 0, "scores": 0}
    real_sdpa = F.scaled_dot_product_attention

    def spy_sdpa(*args, **kwargs):
        calls["sdpa"] += 1
        return real_sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy_sdpa)
    monkeypatch.setattr(module.scorer, "forward", lambda *a: calls.__setitem__("scores", 1))
    module(*padded_batch(dim=D))
    assert calls == {"sdpa": 1, "scores": 0}


def test_alibi_on_sdpa_equals_the_explicit_path():
    module = get_attention("dot")(D, 4, position="alibi").eval()
    x, mask = padded_batch(dim=D)
    q, k, v = module.project(x)
    with torch.no_grad():
        explicit = finish(module, module.weights_from(q, k, mask) @ v, x)
        torch.testing.assert_close(module(x, mask), explicit, atol=1e-5, rtol=1e-5)


def test_linear_matches_its_explicit_quadratic_formula():
    module = get_attention("linear")(D, 4, 2).eval()
    x, mask = padded_batch(dim=D)
    q, k, v = projected(module, x)
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    weights = (phi_q @ phi_k.transpose(-2, -1)) * mask[:, None, None, :]
    expected = finish(module, (weights / weights.sum(-1, keepdim=True)) @ v, x)
    with torch.no_grad():
        torch.testing.assert_close(module(x, mask), expected, atol=1e-5, rtol=1e-5)


def test_local_with_window_covering_the_sequence_equals_dot():
    x, mask = padded_batch(dim=D)
    torch.manual_seed(0)
    dot = get_attention("dot")(D, 4).eval()
    local = get_attention("local")(D, 4, window=x.shape[1]).eval()
    local.load_state_dict(dot.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(local(x, mask), dot(x, mask))


def test_local_attends_only_inside_its_window():
    local = get_attention("local")(D, 2, window=2).eval()
    weights = local.attention_weights(*padded_batch(dim=D))
    far = (torch.arange(12)[None, :] - torch.arange(12)[:, None]).abs() > 2
    assert weights[0][:, far].abs().max() == 0


def test_additive_chunks_equal_the_one_piece_formula(monkeypatch):
    module = get_attention("additive")(D, 2).eval()
    x, mask = padded_batch(dim=D)
    q, k, _ = projected(module, x)
    hidden = torch.tanh(q[:, :, :, None, :] + k[:, :, None, :, :])
    expected = (hidden * module.scorer.energy[None, :, None, None, :]).sum(-1)
    monkeypatch.setattr(additive_module, "CHUNK_ELEMENTS", 200)  # forces chunks of 1 query
    chunked = module.scorer(q, k)
    torch.testing.assert_close(chunked, expected, atol=1e-5, rtol=1e-5)
    chunked.square().sum().backward()  # checkpointed chunks still give gradients
    assert module.scorer.energy.grad.abs().sum() > 0


@pytest.mark.parametrize("alone", ["dot", "general", "cosine", "additive", "local"])
def test_fused_with_all_weight_on_one_scorer_equals_that_scorer(alone):
    others = [t for t in ["dot", "cosine", "general"] if t != alone][:2]
    types = [alone] + others
    specs = [AttentionSpec(t, 2, window=3 if t == "local" else None) for t in types]
    fused = FusedAttention(D, specs, "none", 0.0).eval()
    single = get_attention(alone)(D, 2, window=3 if alone == "local" else None).eval()
    single.load_state_dict({k: v for k, v in fused.state_dict().items() if not k.startswith("scorer.")}, strict=False)
    single.scorer.load_state_dict(fused.scorer.scorers[0].state_dict())
    with torch.no_grad():
        fused.scorer.mix_logits.fill_(-1e4)
        fused.scorer.mix_logits[0] = 1e4
    x, mask = padded_batch(dim=D)
    with torch.no_grad():  # padded queries' outputs are never read, so only real ones must agree
        torch.testing.assert_close(fused(x, mask)[mask], single(x, mask)[mask], atol=1e-5, rtol=1e-5)
