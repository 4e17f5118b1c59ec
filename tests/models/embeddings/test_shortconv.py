"""The short convolution hands each token its neighbours, and no further: what makes recall one lookup."""

from __future__ import annotations

import pytest
import torch

from nas import EmbeddingSpec, InputSpec, SpecError
from nas.models.embeddings import get_embedding

TOKENS = InputSpec(seq_len=9, vocab=11, num_outputs=11, per_token=True)


def changed_positions(kernels: tuple[int, ...], at: int) -> set[int]:
    """The positions whose embedding changes when only the token at ``at`` changes."""
    spec = EmbeddingSpec("shortconv", kernels)
    torch.manual_seed(0)
    module = get_embedding("shortconv")(spec, TOKENS, 8, 1).eval()
    x = torch.randint(0, 10, (1, 9))
    other = x.clone()
    other[0, at] = 10  # an id x never holds
    with torch.no_grad():
        diff = (module(x, None)[0] - module(other, None)[0]).abs().sum(-1)[0]
    return {int(t) for t in torch.nonzero(diff > 0)}


@pytest.mark.parametrize("kernels,reach", [((3,), 1), ((5,), 2), ((3, 3), 2), ((1,), 0)])
def test_a_token_reaches_exactly_the_neighbours_its_kernels_span(kernels, reach):
    assert changed_positions(kernels, at=4) == set(range(4 - reach, 4 + reach + 1))


def test_padding_never_reaches_a_real_token():
    spec = EmbeddingSpec("shortconv", (5,))
    module = get_embedding("shortconv")(spec, TOKENS, 8, 1).eval()
    x = torch.randint(0, 10, (1, 9))
    mask = torch.arange(9)[None] < 5
    other = torch.where(mask, x, (x + 1) % 10)
    with torch.no_grad():
        torch.testing.assert_close(module(x, mask)[0][mask], module(other, mask)[0][mask], atol=0, rtol=0)


@pytest.mark.parametrize("fields,message", [
    ({}, r"^kernels=\(\): embedding 'shortconv' takes 1 to 3 kernel sizes, got 0$"),
    ({"kernels": (4,)}, r"^kernels=\(4,\): kernel size 4 must be an odd integer >= 1"),
    ({"kernels": (3,), "channels": 8}, r"^channels=8 is not allowed for embedding 'shortconv'"),
])
def test_bad_fields_are_refused_in_one_line(fields, message):
    with pytest.raises(SpecError, match=message):
        EmbeddingSpec("shortconv", **fields)
