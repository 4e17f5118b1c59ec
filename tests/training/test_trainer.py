"""The trainer on tiny synthetic tasks: it learns, reports, prunes, guards, and keeps the best epoch."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nas.training.checkpoint import load_checkpoint, save_checkpoint
from nas.models.model import build_model
from nas.data.spec import InputSpec
from nas.models.spec import ArchSpec, AttentionSpec, BlockSpec, MixerSpec
from nas.data import IGNORE_INDEX, Split, Task
from nas.training import trainer as trainer_module
from nas.training.trainer import FitResult, Session, TrainConfig, Trainer, WarmupCosine, maximize

SPEC = ArchSpec(16, (BlockSpec(MixerSpec("single", (AttentionSpec("dot", 2),)), ff_mult=2),), position="none")


def split(n: int, seed: int, kind: str = "classes") -> Split:
    """Continuous (n, 6, 3) steps; the class is the feature with the largest sum over time."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, 3, generator=gen)
    if kind == "regression":
        return Split(x, x.sum((1, 2)) / 4)
    return Split(x, x.sum(1).argmax(-1))


def task(kind: str = "classes", n: int = 192) -> Task:
    regression = kind == "regression"
    spec = InputSpec(seq_len=6, features=3, num_outputs=1 if regression else 3,
                     target="regression" if regression else "classification")
    return Task(kind, split(n, 0, kind), split(64, 1, kind), split(64, 2, kind), spec,
                "mse" if regression else "accuracy", None if regression else ("a", "b", "c"), 0)


def fit(kind: str = "classes", config: TrainConfig | None = None, on_epoch=None, spec: ArchSpec = SPEC):
    trainer = Trainer(task(kind), "cpu")
    model = build_model(spec, trainer.input_spec, seed=0)
    return trainer, model, trainer.fit(model, config or TrainConfig(max_epochs=8, lr=3e-3, batch_size=32), on_epoch)


def test_it_learns_and_reports_every_epoch_to_the_callback():
    calls = []
    _, _, result = fit(on_epoch=lambda epoch, value: calls.append((epoch, value)) and False)
    assert [e for e, _ in calls] == list(range(1, 9))
    assert [v for _, v in calls] == result.val_history
    assert result.best_metric > 0.6  # chance is 1/3
    assert result.stop_reason is None and not result.pruned and result.epochs == 8


def test_metrics_describe_the_best_validation_epoch_model():
    trainer, model, result = fit(config=TrainConfig(max_epochs=10, lr=2e-2, batch_size=16))
    assert result.best_metric == max(result.val_history)
    assert result.val_history[result.best_epoch - 1] == result.best_metric
    assert trainer.evaluate(model, trainer.val) == result.best_metric  # the best state is loaded back
    assert trainer.evaluate(model, trainer.test) == result.test_metric
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in result.best_state.items())


def test_mean_loss_is_the_training_loss_over_the_whole_split():
    for kind, loss in (("classes", torch.nn.functional.cross_entropy), ("regression", torch.nn.functional.mse_loss)):
        trainer, model, _ = fit(kind, TrainConfig(max_epochs=1, lr=3e-3, batch_size=32))
        model.eval()
        with torch.no_grad():
            out = model(trainer.val.x, None)
        expected = loss(out.reshape(trainer.val.y.shape) if kind == "regression" else out, trainer.val.y)
        assert trainer.mean_loss(model, trainer.val) == pytest.approx(float(expected), rel=1e-5)
        assert model.training is False  # left in the mode it was given


def test_a_true_answer_from_the_callback_prunes():
    _, _, result = fit(on_epoch=lambda epoch, value: epoch == 2)
    assert result.pruned and result.epochs == 2
    assert result.stop_reason == "pruned after epoch 2"
    assert result.test_metric is not None


def test_non_finite_loss_stops_as_pruned_with_the_reason():
    trainer = Trainer(task(), "cpu")
    trainer.train = Split(trainer.train.x.clone().fill_(float("inf")), trainer.train.y)
    result = trainer.fit(build_model(SPEC, trainer.input_spec, seed=0), TrainConfig(max_epochs=5))
    assert result.pruned and result.epochs == 0
    assert result.stop_reason == "non-finite loss or accuracy in epoch 1"
    assert result.best_state is None and result.test_metric is None


def test_time_limit_keeps_the_epochs_so_far():
    _, _, result = fit(config=TrainConfig(max_epochs=50, time_limit=1e-6))
    assert result.epochs == 1 and not result.pruned
    assert result.stop_reason.startswith("time limit of 1e-06s reached in epoch 1")
    assert result.best_metric is not None and result.test_metric is not None


class TickingClock:
    """A stand-in for the ``time`` module whose clock moves one second per reading: epochs take a known time."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now


def tick(monkeypatch, *modules) -> TickingClock:
    clock = TickingClock()
    for module in modules:
        monkeypatch.setattr(module, "time", clock)
    return clock


def test_a_binding_time_limit_fits_the_schedule_and_the_run_ends_with_it(monkeypatch):
    """24 batches an epoch read the clock 27 times: a 500 s limit holds about 18 of the 100 epochs asked."""
    tick(monkeypatch, trainer_module)
    _, _, result = fit(config=TrainConfig(max_epochs=100, batch_size=8, time_limit=500))
    assert 10 <= result.schedule_epochs < 20
    assert result.epochs == result.schedule_epochs  # ended with its schedule, not cut by the limit
    assert result.stop_reason == f"schedule fitted to {result.schedule_epochs} of 100 epochs by the time limit of 500s"
    assert not result.pruned and result.test_metric is not None


def test_a_time_limit_that_holds_every_epoch_leaves_the_schedule_alone(monkeypatch):
    tick(monkeypatch, trainer_module)
    _, _, result = fit(config=TrainConfig(max_epochs=8, batch_size=8, time_limit=10_000))
    assert result.schedule_epochs == 8 and result.epochs == 8 and result.stop_reason is None


def test_a_shortened_schedule_decays_to_zero_at_its_new_end():
    factor = WarmupCosine(1000, 0.05)
    factor.shorten(100)
    assert factor(49) == pytest.approx(1.0)  # the warm-up of 50 steps is at most half the new span
    assert factor(75) == pytest.approx(0.5) and factor(100) == pytest.approx(0.0)
    factor.shorten(10)
    assert factor.warm == 5 and factor(10) == pytest.approx(0.0)


def test_a_checkpoint_keeps_the_fitted_span():
    trainer = Trainer(task(), "cpu")
    config = TrainConfig(max_epochs=50, batch_size=32)
    run = Session(trainer, build_model(SPEC, trainer.input_spec, seed=0), config)
    run.shorten(12)
    run.train_epoch()
    again = Session(trainer, build_model(SPEC, trainer.input_spec, seed=0), config)
    again.restore(run.checkpoint(1, FitResult("accuracy")), FitResult("accuracy"))
    assert again.epochs == 12 and again.schedule.get_last_lr() == run.schedule.get_last_lr()


def test_same_seed_same_run_and_another_seed_another():
    runs = [fit(config=TrainConfig(max_epochs=3, seed=s, batch_size=32))[2] for s in (7, 7, 8)]
    assert runs[0].val_history == runs[1].val_history
    assert all(torch.equal(runs[0].best_state[k], runs[1].best_state[k]) for k in runs[0].best_state)
    assert any(not torch.equal(runs[0].best_state[k], runs[2].best_state[k]) for k in runs[0].best_state)


def test_regression_minimises_mean_squared_error():
    _, _, result = fit("regression", TrainConfig(max_epochs=12, lr=1e-2, batch_size=32))
    assert not maximize("mse")
    assert result.best_metric == min(result.val_history)
    assert result.best_metric < result.val_history[0]


def test_per_token_accuracy_counts_labelled_positions_only():
    class Constant(torch.nn.Module):
        def forward(self, x, mask):  # always class 0, at every position
            return torch.nn.functional.one_hot(torch.zeros_like(x), 4).float()

    y = torch.full((2, 5), IGNORE_INDEX)
    y[0, 1], y[1, 3], y[1, 4] = 0, 0, 2
    data = Split(torch.zeros(2, 5, dtype=torch.long), y)
    spec = InputSpec(seq_len=5, vocab=4, num_outputs=4, per_token=True)
    trainer = Trainer(Task("tokens", data, data, data, spec, "accuracy", None, 0), "cpu")
    assert trainer.evaluate(Constant(), data) == pytest.approx(2 / 3)


def test_per_token_task_trains_with_ignored_labels():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 6, (64, 5), generator=gen)
    y = torch.where(torch.arange(5) % 2 == 0, x, torch.full_like(x, IGNORE_INDEX))  # echo even positions
    data = Split(x, y)
    spec = InputSpec(seq_len=5, vocab=6, num_outputs=6, per_token=True)
    trainer = Trainer(Task("echo", data, data, data, spec, "accuracy", None, 0), "cpu")
    result = trainer.fit(build_model(SPEC, spec, seed=0), TrainConfig(max_epochs=15, lr=1e-2, batch_size=16))
    assert result.best_metric > 0.5  # chance is 1/6
    assert all(math.isfinite(v) for v in result.val_history)


def test_learning_rate_warms_up_then_decays_to_zero():
    factor = WarmupCosine(100, 0.1)
    values = [factor(s) for s in range(101)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0) and values[55] == pytest.approx(0.5)
    assert values[100] == pytest.approx(0.0)
    assert WarmupCosine(10, 0.0)(0) == 1.0


@pytest.mark.parametrize("field,value", [("lr", 0.0), ("batch_size", 0), ("warmup", 1.0), ("max_epochs", 0),
                                         ("time_limit", 0.0)])
def test_config_out_of_range_is_refused(field, value):
    with pytest.raises(ValueError, match=f"TrainConfig {field}={value!r} is out of range"):
        TrainConfig(**{field: value})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is absent")
def test_asking_for_cuda_without_cuda_is_an_error():
    with pytest.raises(ValueError, match="no CUDA device"):
        Trainer(task(), "cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fit_uses_bf16_autocast_and_learns():
    trainer = Trainer(task(), "cuda")
    assert trainer.train.x.device.type == "cuda"
    with trainer.autocast():
        assert torch.get_autocast_dtype("cuda") == torch.bfloat16
    model = build_model(SPEC, trainer.input_spec, seed=0)
    result = trainer.fit(model, TrainConfig(max_epochs=8, lr=3e-3, batch_size=32))
    assert result.best_metric > 0.6 and torch.backends.cuda.matmul.allow_tf32


@pytest.mark.parametrize("augment", ["none", "scale_jitter_slice"])
def test_a_run_resumed_from_its_checkpoint_matches_the_run_never_stopped(tmp_path, augment):
    trainer, config = Trainer(task(), "cpu"), TrainConfig(max_epochs=4, seed=3, lr=3e-3, augment=augment)
    whole = trainer.fit(build_model(SPEC, trainer.input_spec, seed=0), config)
    path = tmp_path / "trial_0.pt"

    def crash_in_epoch_3(epoch: int, value: float) -> bool:
        if epoch == 3:
            raise RuntimeError("killed")
        return False

    with pytest.raises(RuntimeError, match="killed"):
        trainer.fit(build_model(SPEC, trainer.input_spec, seed=0), config, on_epoch=crash_in_epoch_3,
                    on_checkpoint=lambda state: save_checkpoint(path, state))
    state = load_checkpoint(path)
    assert state["epoch"] == 2
    resumed = trainer.fit(build_model(SPEC, trainer.input_spec, seed=0), config, resume=state)
    assert resumed.val_history == whole.val_history and resumed.test_metric == whole.test_metric
    older = {key: value for key, value in load_checkpoint(path).items() if key != "device_rng"}  # as saved before
    again = trainer.fit(build_model(SPEC, trainer.input_spec, seed=0), config, resume=older)
    assert again.val_history == whole.val_history


def test_a_corrupt_checkpoint_is_ignored_with_a_warning(tmp_path):
    path = tmp_path / "trial_0.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match=r"trial_0.pt' is corrupt .*the retry starts from epoch 0"):
        assert load_checkpoint(path) is None
    assert load_checkpoint(tmp_path / "absent.pt") is None


FIRST_TRIAL = """
import sys
import torch
from nas.models.measure import count_flops
from nas.models.model import build_model
from nas.data.spec import InputSpec
from nas.models.spec import ArchSpec, AttentionSpec, BlockSpec, MixerSpec
from nas.data import Split, Task
from nas.training.trainer import TrainConfig, Trainer

data = Split(torch.randn(32, 6, 3), torch.randint(0, 3, (32,)))
trainer = Trainer(Task("t", data, data, data, InputSpec(6, 3, 3), "accuracy", None, 0), "cpu")
before = set(sys.modules)
model = build_model(ArchSpec(8, (BlockSpec(MixerSpec("single", (AttentionSpec("dot", 2),))),)), trainer.input_spec)
count_flops(model, data.x[:1])
trainer.fit(model, TrainConfig(max_epochs=1))
print(sorted(m for m in set(sys.modules) - before if m.startswith(("torch._dynamo", "torch._inductor"))))
"""


def test_a_fresh_workers_first_trial_imports_nothing_of_torchs_compiler():
    """torch imports its compiler (1.3 s) at a process's first optimiser or FLOP count; the Trainer does it up
    front, so it does not count as a worker's first trial's time."""
    child = subprocess.run([sys.executable, "-c", FIRST_TRIAL], cwd=Path(__file__).parents[2], capture_output=True,
                           text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "[]"
