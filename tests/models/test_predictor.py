"""The predictor on inputs no export test covers: token ids, per-position labels, and single-feature series."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas import ArchSpec, AttentionSpec as A, BlockSpec, InputSpec, MixerSpec, Predictor, build_model
from nas.data.scaling import Scaling
from tests.conftest import tolerance

BLOCKS = (BlockSpec(MixerSpec("single", (A("dot", 2),))),)


def model(input_spec: InputSpec):
    return build_model(ArchSpec(d_model=16, blocks=BLOCKS), input_spec, seed=0).eval()


def test_token_ids_get_one_label_per_position_and_shorter_sequences_a_mask():
    spec = InputSpec(seq_len=12, vocab=20, num_outputs=20, per_token=True)
    net = model(spec)
    ids = np.random.default_rng(0).integers(0, 20, (3, 12))
    with torch.no_grad():
        expected = net(torch.from_numpy(ids)).argmax(-1).numpy()
    predictor = Predictor(net, spec, scaling=None, classes=None)
    assert np.array_equal(predictor.predict(ids), expected)
    short = predictor.predict([ids[0][:5], ids[1]])
    assert short.shape == (2, 12)
    with pytest.raises(ValueError, match="token inputs must be"):
        predictor.predict(ids[:, :, None])


def test_a_one_feature_task_takes_plain_rows_and_scales_them_as_training_did():
    spec = InputSpec(seq_len=10, features=1, num_outputs=2)
    net = model(spec)
    raw = np.random.default_rng(1).normal(50, 7, (4, 10))
    scaling = Scaling(mean=(50.0,), std=(7.0,))
    with torch.no_grad():
        expected = net(torch.from_numpy((raw[:, :, None] - 50) / 7).float()).argmax(-1).numpy()
    predictor = Predictor(net, spec, scaling, classes=("no", "yes"))
    assert list(predictor.predict(raw)) == list(np.array(["no", "yes"])[expected])
    with pytest.raises(ValueError, match="scaling has 2 features, the model reads 1"):
        Predictor(net, spec, Scaling(mean=(0.0, 0.0), std=(1.0, 1.0)), classes=None)


def test_the_predictor_runs_on_the_device_asked_and_answers_on_the_cpu(device):
    spec = InputSpec(seq_len=10, features=2, num_outputs=3, target="regression")
    net = model(spec)
    x = np.random.default_rng(2).normal(size=(5, 10, 2))
    with torch.no_grad():
        expected = net(torch.from_numpy(x).float()).numpy()
    predictor = Predictor(net, spec, scaling=None, classes=None, device=device)
    assert next(predictor.model.parameters()).device.type == device
    values = predictor.predict(x)
    assert isinstance(values, np.ndarray) and values.shape == (5, 3)
    np.testing.assert_allclose(values, expected, rtol=tolerance(device), atol=tolerance(device))
