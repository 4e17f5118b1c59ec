"""The convolutional stem: its layers follow the spec, and padding never reaches a real step through a kernel."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from nas import ArchSpec, AttentionSpec as A, BlockSpec, InputSpec, MixerSpec, SpecError, build_model
from nas.models import EmbeddingSpec
from nas.models.embeddings import get_embedding
from tests.conftest import padded_batch, scramble_padding

SERIES = InputSpec(seq_len=13, features=3, num_outputs=5)


def stem(kernels=(7, 5, 3), channels=None, patch=1, norm="layer"):
    spec = EmbeddingSpec("conv", kernels, channels, norm)
    return get_embedding("conv")(spec, SERIES, 16, patch).eval()


def test_layers_follow_the_spec_and_keep_the_length():
    module = stem((7, 5, 3), channels=8)
    assert [c.kernel_size for c in module.convs] == [(7,), (5,), (3,)]
    assert [(c.in_channels, c.out_channels) for c in module.convs] == [(3, 8), (8, 8), (8, 8)]
    assert stem((3,)).convs[0].out_channels == 16, "channels=None means the model width"
    out, _ = module(torch.randn(2, 13, 3), None)
    assert out.shape == (2, 13, 16)


@pytest.mark.parametrize("norm", ["layer", "batch"])
@pytest.mark.parametrize("patch", [1, 3])
def test_a_padded_sample_embeds_exactly_as_it_would_alone(patch, norm):
    module = stem(patch=patch, norm=norm)
    module.train()(*padded_batch(length=13, dim=3))  # running statistics that are not the identity
    module.eval()
    x, mask = padded_batch(length=13, dim=3)  # sample 1 keeps 7 real steps
    with torch.no_grad():
        together, together_mask = module(x, mask)
        alone, _ = module(x[1:2, :7], None)
    real = together_mask[1]
    assert real.sum() == alone.shape[1]
    torch.testing.assert_close(together[1, real], alone[0], atol=1e-6, rtol=1e-6)


def test_batch_statistics_count_real_steps_only():
    """In training a batch norm stem normalises by the real steps' statistics: padding changes neither a real
    step's output nor the running averages that eval mode uses."""
    module = stem((3,), norm="batch").train()
    twin = copy.deepcopy(module)
    x, mask = padded_batch(length=13, dim=3)
    out, _ = module(x, mask)
    noisy, _ = twin(scramble_padding(x, mask), mask)
    torch.testing.assert_close(noisy[mask], out[mask])
    norm = module.norms[0]
    torch.testing.assert_close(twin.norms[0].running_mean, norm.running_mean)
    real = module.convs[0]((x * mask[..., None]).transpose(1, 2)).transpose(1, 2)[mask]  # (real steps, channels)
    torch.testing.assert_close(norm.running_mean, norm.momentum * real.mean(0), atol=1e-6, rtol=1e-5)


def test_without_padding_the_batch_norm_is_torchs():
    module = stem((3,), norm="batch").train()
    x = torch.randn(4, 13, 3)
    conv = module.convs[0](x.transpose(1, 2))  # (B, C, T), as torch's BatchNorm1d reads it
    mean, var = torch.zeros(16), torch.ones(16)
    norm = module.norms[0]
    expected = F.gelu(F.batch_norm(conv, mean, var, norm.weight, norm.bias, training=True)).transpose(1, 2)
    torch.testing.assert_close(module(x, None)[0], module.project(expected), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(norm.running_mean, mean, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(norm.running_var, var, atol=1e-6, rtol=1e-5)


def test_with_padding_the_batch_norm_is_torchs_over_the_real_steps():
    module = stem((3,), norm="batch").train()
    x, mask = padded_batch(length=13, dim=3)
    conv = module.convs[0]((x * mask[..., None]).transpose(1, 2)).transpose(1, 2)[mask]  # (real steps, channels)
    norm = module.norms[0]
    real = F.batch_norm(conv.T[None], None, None, norm.weight, norm.bias, training=True)[0].T  # as one sample
    torch.testing.assert_close(module(x, mask)[0][mask], module.project(F.gelu(real)), atol=1e-5, rtol=1e-5)


def test_the_batch_norm_keeps_the_input_dtype_with_or_without_padding():
    """Under bf16 autocast the stem's activations stay bf16 on both paths, as torch's batch_norm keeps them."""
    norm = stem((3,), norm="batch").train().norms[0]
    x, keep = torch.randn(4, 16, 13, dtype=torch.bfloat16), torch.ones(4, 1, 13, dtype=torch.bfloat16)
    keep[1, :, 7:] = 0
    assert norm(x, None).dtype == norm(x, keep).dtype == torch.bfloat16


def test_build_model_refuses_a_stem_for_token_inputs_in_one_line():
    arch = ArchSpec(d_model=16, blocks=(BlockSpec(MixerSpec("single", (A("dot", 4),))),),
                    embedding=EmbeddingSpec("conv", (3,)))
    with pytest.raises(SpecError, match=r"^embedding 'conv' reads continuous steps; token inputs need embedding "
                                        r"'linear', 'shortconv'$"):
        build_model(arch, InputSpec(seq_len=8, vocab=5, num_outputs=2))
    with pytest.raises(SpecError, match=r"^embedding 'conv' is for pooled tasks; per-token tasks need embedding"):
        build_model(arch, InputSpec(seq_len=8, features=2, num_outputs=2, per_token=True))
