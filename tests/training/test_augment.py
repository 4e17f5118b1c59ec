"""Train-time augmentation: it changes series as promised, leaves padding and token ids alone, and is seeded
(a resumed augmented run matches one never stopped: tests/training/test_trainer.py)."""

from __future__ import annotations

import pytest
import torch

from nas.models.model import build_model
from nas.training.augment import AUGMENTS, SLICE, augment
from nas.training.trainer import TrainConfig, Trainer
from tests.training.test_trainer import SPEC, task

NAME = "scale_jitter_slice"


def ramps(batch: int = 4, steps: int = 50, channels: int = 2) -> torch.Tensor:
    return torch.linspace(0, 1, steps)[None, :, None].repeat(batch, 1, channels)


def test_none_returns_the_batch_untouched():
    x = ramps()
    assert augment("none", x, None, torch.Generator()) is x


def test_it_changes_each_series_within_its_range_of_amplitude_and_window():
    x = ramps()
    out = augment(NAME, x, None, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.equal(out, x)
    # a 90% window of a 0..1 ramp, stretched back: it still rises by about 0.9 times a log-normal scale
    rise = (out[:, -5:].mean(1) - out[:, :5].mean(1)) / (SLICE * 0.9)
    assert ((rise > 0.4) & (rise < 2.5)).all()


def test_the_same_generator_seed_gives_the_same_batch_and_another_seed_another():
    x = ramps()
    first, again, other = (augment(NAME, x, None, torch.Generator().manual_seed(s)) for s in (1, 1, 2))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_a_padded_series_is_sliced_within_its_length_and_its_padding_stays_zero():
    x = ramps(batch=2, steps=40, channels=1)
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 25:] = False
    x[1, 25:] = 0
    out = augment(NAME, x, mask, torch.Generator().manual_seed(0))
    assert torch.equal(out[1, 25:], torch.zeros(15, 1))
    assert out[1, :25].abs().sum() > 0


def test_token_ids_and_unknown_names_are_refused_with_what_is_allowed():
    with pytest.raises(ValueError, match="series of numbers"):
        augment(NAME, torch.zeros(2, 5, dtype=torch.long), None, torch.Generator())
    with pytest.raises(ValueError, match=f"augment='flip' is unknown; allowed: {', '.join(AUGMENTS)}"):
        augment("flip", ramps(), None, torch.Generator())
    with pytest.raises(ValueError, match=r"TrainConfig augment='flip' is out of range; allowed: none, "):
        TrainConfig(augment="flip")


def test_a_regression_task_refuses_augmentation_before_training():
    trainer = Trainer(task("regression"), "cpu")
    with pytest.raises(ValueError, match=r"augment='scale_jitter_slice' keeps a series' class.*target is regression"):
        trainer.fit(build_model(SPEC, trainer.input_spec, seed=0), TrainConfig(max_epochs=1, augment=NAME))


def test_an_augmented_run_learns_and_differs_from_a_plain_one():
    trainer = Trainer(task(), "cpu")
    augmented, plain = (trainer.fit(build_model(SPEC, trainer.input_spec, seed=0),
                                    TrainConfig(max_epochs=4, seed=3, lr=3e-3, augment=name)) for name in (NAME, "none"))
    assert augmented.val_history != plain.val_history and augmented.best_metric > 0.5  # chance is 1/3
