"""The memory estimate a candidate gets before it trains, and the batch it is shrunk to."""

from __future__ import annotations

import pytest
import torch

from nas.data.spec import InputSpec
from nas.models import ArchSpec, AttentionSpec, BlockSpec, MixerSpec, build_model
from nas.training.memory import GIB, MemoryBudgetError, MemoryNeed, fit_batch, measure_memory_need

SERIES = InputSpec(seq_len=64, features=1, num_outputs=2)


def spec(kind: str) -> ArchSpec:
    return ArchSpec(16, (BlockSpec(MixerSpec("single", (AttentionSpec(kind, 2),))),))


def test_the_need_per_sample_grows_with_the_square_of_the_length_for_softmax_attention():
    def per_sample(length: int, kind: str) -> float:
        model = build_model(spec(kind), InputSpec(seq_len=length, features=1, num_outputs=2), seed=0)
        return measure_memory_need(model, torch.randn(4, length, 1), None).per_sample_bytes

    cosine = per_sample(256, "cosine") / per_sample(128, "cosine")
    linear = per_sample(256, "linear") / per_sample(128, "linear")
    assert cosine > 3 and linear < 2.5  # a score matrix per head against none


def test_the_estimate_counts_weights_gradients_and_optimiser_moments():
    model = build_model(spec("dot"), SERIES, seed=0)
    need = measure_memory_need(model, torch.randn(4, 64, 1), None)
    params = sum(p.numel() * 4 for p in model.parameters())
    assert need.state_bytes == 4 * params and need.at(64) > need.at(8) > need.state_bytes


def test_a_batch_too_large_is_halved_and_a_model_too_large_is_refused_with_the_estimate():
    need = MemoryNeed(state_bytes=GIB // 10, per_sample_bytes=GIB / 100)
    assert fit_batch(need, 128, allowed=GIB) == 32  # 1.42 GiB at 64, 0.58 GiB at 32
    assert fit_batch(need, 16, allowed=GIB) == 16
    with pytest.raises(MemoryBudgetError, match=r"^memory: needs ~225\.3 MiB to train at batch 8, "
                                                r"102\.4 MiB allowed$") as refused:
        fit_batch(need, 128, allowed=GIB // 10)
    assert refused.value.reason.startswith("memory: ")
