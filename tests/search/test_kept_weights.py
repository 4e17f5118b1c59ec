"""Per-trial weights: safetensors round trip, atomic writes, safe reads, and which trials keep theirs."""

from __future__ import annotations

import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas.search.kept_weights import WEIGHTS_ATTR, is_new_best, keep_if_best, load_trial_weights, save_trial_weights, study_dir
from nas.models.weights import load_weights
from tests.support.studies import hand_study


def state() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {"w": torch.randn(3, 4, generator=gen), "b": torch.randn(4, generator=gen).to(torch.bfloat16),
            "count": torch.tensor([7], dtype=torch.int64), "view": torch.randn(4, 6, generator=gen).t()}


def test_trial_weights_round_trip_bit_for_bit_with_a_relative_path_and_no_leftovers(tmp_path):
    saved = state()
    relative = save_trial_weights(tmp_path, "digits/tiny", 3, saved)
    assert relative == "digits_tiny/weights/trial_3.safetensors"
    assert sorted(p.name for p in (tmp_path / "digits_tiny" / "weights").iterdir()) == ["trial_3.safetensors"]
    loaded = load_weights(tmp_path / relative)
    assert saved.keys() == loaded.keys()
    for name in saved:
        assert loaded[name].dtype == saved[name].dtype and torch.equal(loaded[name], saved[name])


def test_a_pickle_file_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "trial_0.safetensors"
    torch.save({"w": torch.zeros(2), "payload": Exploit(marker)}, path)  # torch's zip-of-pickles format
    with pytest.raises(ValueError, match="not a valid safetensors file.*never unpickled"):
        load_weights(path)
    assert not marker.exists()


class Exploit:
    """Unpickling this would create ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("direction, values, expected", [
    ("maximize", [0.5, 0.7], {0.8: True, 0.7: True, 0.6: False}),  # a tie is kept: it may be the one reported best
    ("minimize", [0.5, 0.7], {0.4: True, 0.5: True, 0.6: False}),
])
def test_is_new_best_against_complete_trials_only(direction, values, expected):
    rows = [{"values": [v]} for v in values] + [{"state": TrialState.PRUNED, "best_val": 0.99}]
    study = hand_study(rows, directions=(direction,))
    assert {v: is_new_best(study, v) for v in expected} == expected


def test_is_new_best_with_two_objectives_means_not_dominated():
    study = hand_study([{"values": [0.9, 5.0]}, {"values": [0.8, 2.0]}], directions=("maximize", "minimize"))
    assert is_new_best(study, [0.85, 3.0]) and is_new_best(study, [0.95, 9.0])
    assert not is_new_best(study, [0.85, 6.0])
    with pytest.raises(ValueError, match="2 objective"):
        is_new_best(study, 0.9)


def test_an_objective_keeps_only_the_weights_of_new_bests(tmp_path):
    study = optuna.create_study(direction="maximize", study_name="keep")
    scores = iter([0.5, 0.3, 0.7, 0.7, 0.6])

    def objective(trial):
        value = next(scores)
        seen = study.get_trials(deepcopy=False)
        keep_if_best(trial, {"w": torch.full((2,), value)}, value, seen, results_dir=tmp_path)
        return value

    study.optimize(objective, n_trials=5)
    kept = {t.number: t.user_attrs.get(WEIGHTS_ATTR) for t in study.trials}
    assert [n for n, path in kept.items() if path] == [0, 2, 3]
    assert sorted(p.name for p in (study_dir(tmp_path, "keep") / "weights").iterdir()) == [
        "trial_0.safetensors", "trial_2.safetensors", "trial_3.safetensors"]
    assert torch.equal(load_trial_weights(tmp_path, study.trials[2])["w"], torch.full((2,), 0.7))


def test_missing_weights_say_why_and_what_to_do(tmp_path):
    study = hand_study([{"values": [0.5]}, {"values": [0.6], WEIGHTS_ATTR: "gone/weights/trial_1.safetensors"}])
    with pytest.raises(ValueError, match="trial 0 has no saved weights.*--retrain-epochs"):
        load_trial_weights(tmp_path, study.trials[0])
    with pytest.raises(ValueError, match="trial_1.safetensors', which does not exist"):
        load_trial_weights(tmp_path, study.trials[1])
