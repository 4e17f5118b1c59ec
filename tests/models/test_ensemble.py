"""SeedEnsemble: several seeds of one architecture answering as one model."""

from __future__ import annotations

import random

import pytest
import torch

from nas import InputSpec, SeedEnsemble, build_model
from nas.models.ensemble import first_member
from tests.support.specs import random_spec


def _members(input_spec: InputSpec, count: int = 3):
    rng = random.Random(0)
    spec = random_spec(rng)
    while spec.embedding.type != "linear" or spec.patch != 1:  # fits any input shape
        spec = random_spec(rng)
    return [build_model(spec, input_spec, seed=seed).eval() for seed in range(count)]


def test_classification_answers_with_the_mean_class_probabilities():
    spec = InputSpec(seq_len=12, features=3, num_outputs=4)
    members = _members(spec)
    x, mask = torch.randn(5, 12, 3), torch.ones(5, 12, dtype=torch.bool)
    mask[0, 8:] = False
    with torch.no_grad():
        expected = torch.stack([m(x, mask).softmax(-1) for m in members]).mean(0)
        got = SeedEnsemble(members)(x, mask)
    torch.testing.assert_close(got.softmax(-1), expected)
    torch.testing.assert_close(got.exp().sum(-1), torch.ones(5))  # log-probabilities: softmax leaves them as they are


def test_regression_answers_with_the_mean_value_and_one_member_is_itself():
    spec = InputSpec(seq_len=8, features=2, num_outputs=1, target="regression")
    members = _members(spec, 2)
    x = torch.randn(4, 8, 2)
    with torch.no_grad():
        torch.testing.assert_close(SeedEnsemble(members)(x), (members[0](x) + members[1](x)) / 2)
        torch.testing.assert_close(SeedEnsemble(members[:1])(x), members[0](x))
    assert first_member(SeedEnsemble(members)) is members[0] and first_member(members[1]) is members[1]


def test_an_empty_ensemble_is_refused():
    with pytest.raises(ValueError, match="at least one member"):
        SeedEnsemble([])
