"""Export a trial of a real (tiny) search and rebuild it: same outputs bit for bit, safe loading, refusals."""

from __future__ import annotations

import json
import pickle
import re
import shutil

import pytest
import torch
from optuna.trial import TrialState

from nas.search.record import recorded
from nas.models.weights import load_weights, save_weights
from nas.cli import export_main
from nas.models.saved import EXPORT_FILES, ExportError, load_model
from nas.data.folds import merge_splits
from nas.results.export import export_trial
from nas.models.model import build_model
from nas.models.spec import ArchSpec
from nas.data import Split, load_task
from nas.training.trainer import Trainer
from tests.support.studies import tiny_study


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_study(tmp_path_factory)


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "best"
    return export_trial(tiny.load(), out, results_dir=tiny.results, final=False, device="cpu", storage_url=tiny.url)


@pytest.fixture(scope="module")
def task():
    return load_task("digits", seed=0)


def outputs(model, split: Split) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(split.x, split.mask)


def test_load_model_reproduces_the_trial_model_bit_for_bit_and_its_test_accuracy(tiny, exported, task):
    best = tiny.load().best_trial
    assert exported.trial == best.number
    source = build_model(ArchSpec.from_json(best.user_attrs["arch"]), task.input_spec)
    source.load_state_dict(tiny.states[best.number])  # the model the search trained and kept
    loaded = load_model(exported.out_dir)
    assert not loaded.training
    assert torch.equal(outputs(loaded, task.test), outputs(source, task.test))
    metrics = json.loads((exported.out_dir / "metrics.json").read_text())
    assert metrics["test"] == best.user_attrs["test"] and metrics["val"] == best.value
    assert Trainer(task, "cpu").evaluate(loaded, task.test) == best.user_attrs["test"]


def test_the_export_holds_spec_metrics_provenance_and_a_card_whose_snippet_runs(tiny, exported, task):
    out = exported.out_dir
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPORT_FILES)
    best = tiny.load().best_trial
    assert ArchSpec.from_json((out / "arch.json").read_text()).to_json() == best.user_attrs["arch"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["study"], metrics["trial"], metrics["task"], metrics["metric"]) == ("tiny", best.number, "digits",
                                                                                        "accuracy")
    for key in ("params", "flops", "latency_ms", "device"):
        assert metrics[key] == recorded(best, key)
    assert {"python", "torch", "optuna", "safetensors"} <= set(metrics["versions"])
    card = (out / "MODEL.md").read_text()
    assert best.user_attrs["summary"] in card and "block 1:" in card and f"trial {best.number}" in card
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1).replace("path/to/this/folder", str(out))
    scaling = metrics["preprocessing"]["scaling"]
    raw = task.test.x[:5].numpy().astype("float64") * scaling["std"] + scaling["mean"]  # digits as scikit-learn has them
    scope = {"X": raw}
    exec(snippet, scope)
    ids = outputs(load_model(out), task.test).argmax(-1)[:5].numpy()
    assert list(scope["labels"]) == [metrics["preprocessing"]["classes"][i] for i in ids]


def test_an_existing_export_is_refused_unless_forced_and_nothing_is_overwritten(tiny, tmp_path):
    out = tmp_path / "best"
    export_trial(tiny.load(), out, results_dir=tiny.results, final=False, device="cpu")
    before = {name: (out / name).read_bytes() for name in EXPORT_FILES}
    with pytest.raises(ExportError, match="already holds an export.*--force"):
        export_trial(tiny.load(), out, trial=0, results_dir=tiny.results, final=False, device="cpu")
    assert {name: (out / name).read_bytes() for name in EXPORT_FILES} == before
    export_trial(tiny.load(), out, trial=0, results_dir=tiny.results, final=False, device="cpu", force=True)
    assert json.loads((out / "metrics.json").read_text())["trial"] == 0


def test_a_trial_that_does_not_exist_or_did_not_complete_is_refused_before_writing(tiny, tmp_path):
    pruned = next(t.number for t in tiny.load().trials if t.state == TrialState.PRUNED)
    with pytest.raises(ValueError, match=r"trial 99 does not exist in study 'tiny' \(trials 0\.\.3\)"):
        export_trial(tiny.load(), tmp_path / "a", trial=99, results_dir=tiny.results)
    with pytest.raises(ValueError, match=rf"trial {pruned} did not complete \(PRUNED: pruned after epoch 1\)"):
        export_trial(tiny.load(), tmp_path / "b", trial=pruned, results_dir=tiny.results)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def copy(exported, tmp_path):
    target = tmp_path / "export"
    shutil.copytree(exported.out_dir, target)
    return target


@pytest.mark.parametrize("missing", ["arch.json", "model.safetensors", "metrics.json"])
def test_load_model_names_a_missing_file(copy, missing):
    (copy / missing).unlink()
    with pytest.raises(ExportError, match=f"is missing {missing}"):
        load_model(copy)


def test_load_model_names_the_tensor_that_does_not_fit_the_spec(copy):
    spec = json.loads((copy / "arch.json").read_text())
    spec["d_model"] = 8
    (copy / "arch.json").write_text(json.dumps(spec))
    with pytest.raises(ExportError, match=r"tensor 'embedding.embed.weight' has shape \(16, 8\), the architecture needs \(8, 8\)"):
        load_model(copy)


@pytest.mark.parametrize("change, message", [("extra", "unexpected tensor 'extra'"),
                                             ("drop", "tensor 'head.bias' is missing")])
def test_load_model_refuses_weights_with_a_tensor_too_many_or_too_few(copy, change, message):
    state = load_weights(copy / "model.safetensors")
    if change == "extra":
        state["extra"] = torch.zeros(1)
    else:
        del state["head.bias"]
    save_weights(copy / "model.safetensors", state)
    with pytest.raises(ExportError, match=message):
        load_model(copy)


class Exploit:
    """Unpickling this creates ``marker``: the code a pickle can run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_weights_file_holding_a_pickle_payload_is_refused_and_never_runs(copy, tmp_path):
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(Exploit(marker))
    (copy / "model.safetensors").write_bytes(payload)
    with pytest.raises(ExportError, match="not a valid safetensors file.*never unpickled"):
        load_model(copy)
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live: this is what loading must never do
    assert marker.exists()


def test_retrain_epochs_trains_on_train_and_validation_and_exports_that_model(tiny, tmp_path, task):
    result = export_trial(tiny.load(), tmp_path / "re", results_dir=tiny.results, retrain_epochs=1, device="cpu")
    metrics = result.metrics
    assert metrics["val"] is None and "retrained on train + validation for 1 epochs" in metrics["weights"]
    loaded = load_model(tmp_path / "re")
    assert torch.equal(outputs(loaded, task.test), outputs(result.model, task.test))
    assert metrics["test"] == Trainer(task, "cpu").evaluate(loaded, task.test)


def test_merge_splits_keeps_padding_and_marks_unpadded_samples_full():
    masked = Split(torch.zeros(2, 3, 1), torch.tensor([0, 1]), torch.tensor([[1, 1, 0], [1, 1, 1]]).bool(),
                   torch.tensor([2, 3]))
    full = Split(torch.ones(1, 3, 1), torch.tensor([1]))
    merged = merge_splits(masked, full)
    assert merged.mask.tolist() == [[True, True, False], [True, True, True], [True, True, True]]
    assert merged.lengths.tolist() == [2, 3, 3] and merged.y.tolist() == [0, 1, 1]
    assert merge_splits(full, full).mask is None


def test_cli_exports_then_refuses_a_second_export_with_one_line(tiny, tmp_path, capsys):
    args = ["--study", "tiny", "--results", str(tiny.results), "--out", str(tmp_path / "e"), "--device", "cpu",
            "--search-weights"]
    assert export_main(args) == 0
    assert f"exported trial {tiny.load().best_trial.number} of study 'tiny'" in capsys.readouterr().out
    assert export_main(args + ["--trial", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("export.py: error: ") and "already holds an export" in err and err.count("\n") == 1


def test_cli_unknown_study_lists_the_studies_there(tiny, capsys):
    assert export_main(["--study", "nope", "--storage", tiny.url]) == 2
    assert capsys.readouterr().err == f"export.py: error: study 'nope' is not in {tiny.url}; studies there: tiny\n"
    assert export_main(["--study", "nope", "--results", str(tiny.results)]) == 2
    assert "no study storage at" in capsys.readouterr().err
