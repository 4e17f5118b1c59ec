from __future__ import annotations

import torch
from torch import nn

from nas import ArchSpec, AttentionSpec as A, BlockSpec, InputSpec, MixerSpec, build_model
from nas.models import EmbeddingSpec
from nas.models.embeddings import get_embedding
from nas.models.measure import count_flops, count_parameters, measure_latency


def test_parameters_count_trainable_only():
    layer = nn.Linear(4, 3)
    layer.bias.requires_grad_(False)
    assert count_parameters(layer) == 12


def test_flops_of_a_linear_layer_are_two_per_multiply_add():
    assert count_flops(nn.Linear(8, 5, bias=False), torch.randn(3, 8)) == 2 * 3 * 8 * 5


def test_attention_flops_grow_quadratically_with_length_and_linear_does_not():
    def flops(kind: str, length: int) -> int:
        arch = ArchSpec(d_model=32, blocks=(BlockSpec(MixerSpec("single", (A(kind, 4),))),))
        model = build_model(arch, InputSpec(seq_len=length, features=2, num_outputs=2), seed=0)
        return count_flops(model, torch.randn(1, length, 2))

    dot_growth = flops("dot", 512) / flops("dot", 128)
    linear_growth = flops("linear", 512) / flops("linear", 128)
    assert dot_growth > 5 and linear_growth < 4.5


def test_latency_is_a_positive_number_of_seconds_and_keeps_training_mode():
    model = nn.Linear(4, 4).train()
    seconds = measure_latency(model, torch.randn(2, 4), repeats=3)
    assert 0 < seconds < 1 and model.training


def test_sdpa_on_cpu_counts_its_two_matrix_products():
    from nas.models.attention import get_attention

    layer = get_attention("dot")(16, 2)
    x = torch.randn(1, 32, 16)
    projections = 2 * 32 * 16 * (16 + 32 + 16)  # q, kv and out projections
    attention = 2 * 2 * (2 * 32 * 32 * 8)  # two products (q k^T, weights @ v), 2 FLOPs each, 2 heads of 8
    assert count_flops(layer, x) == projections + attention


def test_a_conv_stem_counts_its_convolutions():
    features, width, d_model, length = 2, 8, 16, 32
    spec = EmbeddingSpec("conv", kernels=(5, 3), channels=width)
    stem = get_embedding("conv")(spec, InputSpec(seq_len=length, features=features, num_outputs=2), d_model, 1)
    convolutions = 2 * length * width * (features * 5 + width * 3)  # 2 FLOPs per multiply-add, per output step
    projection = 2 * length * width * d_model
    assert count_flops(stem, torch.randn(1, length, features), None) == convolutions + projection
