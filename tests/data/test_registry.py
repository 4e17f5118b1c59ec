from __future__ import annotations

import pytest
import torch

from nas.data.registry import references_for
from nas.data import DEFAULT_TASK, Task, TaskError, list_tasks, load_task, register_task
from nas.data.registry import task_families

from .helpers import assert_same_tensors, assert_well_formed

REQUIRED_UCR = ["ArrowHead", "BasicMotions", "GunPoint", "ItalyPowerDemand", "JapaneseVowels", "OSULeaf"]
SMALL = {
    "digits": {},
    "ucr:GunPoint": {},
    "mqar": dict(seq_len=32, pairs=4, n_train=64, n_val=16, n_test=16),
    "listops": dict(min_len=8, max_len=24, n_train=64, n_val=16, n_test=16),
}


def test_list_tasks_names_every_required_task_and_no_placeholder():
    names = list_tasks()
    assert {"digits", "mqar", "listops"} <= set(names)
    assert {f"ucr:{n}" for n in REQUIRED_UCR} <= set(names)
    assert not any(n.startswith("file") for n in names)
    assert DEFAULT_TASK == "digits"


def test_unknown_task_lists_the_registry_with_a_close_match():
    with pytest.raises(TaskError, match=r"unknown task 'digts'; did you mean 'digits'\?.*mqar.*ucr:<name>"):
        load_task("digts")


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="'mqar' is already registered"):
        register_task("mqar")(lambda *, seed: None)
    assert "mqar" in task_families()


def test_parameters_in_the_name_equal_keyword_parameters(tmp_path):
    by_name = load_task("mqar:seq_len=32,pairs=4,n_train=8,n_val=4,n_test=4", seed=3)
    by_keyword = load_task("mqar", seed=3, seq_len=32, pairs=4, n_train=8, n_val=4, n_test=4)
    assert_same_tensors(by_name, by_keyword)
    assert by_name.name == by_keyword.name == "mqar:n_test=4,n_train=8,n_val=4,pairs=4,seq_len=32"


def test_canonical_name_reloads_the_same_task(tmp_path):
    task = load_task("listops", seed=2, cache_dir=tmp_path, **SMALL["listops"])
    assert_same_tensors(load_task(task.name, seed=task.seed, cache_dir=tmp_path), task)
    assert load_task("mqar", n_train=4, n_val=4, n_test=4, vocab=64).name == "mqar:n_test=4,n_train=4,n_val=4"


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("mqar:sq_len=12", {}, r"unknown parameter of task 'mqar' 'sq_len'; did you mean 'seq_len'\? allowed: vocab, seq_len"),
        ("mqar:seq_len=abc", {}, r"seq_len='abc' must be an integer"),
        ("mqar", {"pairs": 2.5}, r"pairs=2.5 must be an integer"),
        ("mqar:seq_len", {}, r"parameter 'seq_len' must look like key=value"),
        ("mqar:pairs=4", {"pairs": 4}, r"\['pairs'\] given both in the name and as keywords"),
        ("digits", {"folds": 3}, r"task 'digits' takes no parameters, got 'folds'"),
        ("ucr", {}, r"task 'ucr' needs a name: write 'ucr:<name>'"),
        ("digits", {"seed": -1}, r"seed=-1 must be an integer >= 0"),
    ],
)
def test_bad_names_and_parameters_are_refused(name, params, message):
    with pytest.raises(TaskError, match=message):
        load_task(name, **params)


@pytest.mark.parametrize("name", list(SMALL))
def test_same_seed_gives_bit_equal_tensors_and_another_seed_another_split(name, tmp_path):
    first = load_task(name, seed=5, cache_dir=tmp_path, **SMALL[name])
    again = load_task(name, seed=5, cache_dir=tmp_path / "fresh", **SMALL[name])  # regenerated, not cached
    assert_same_tensors(first, again)
    other = load_task(name, seed=6, cache_dir=tmp_path, **SMALL[name])
    assert other.train.x.shape != first.train.x.shape or not torch.equal(other.train.x, first.train.x)
    assert other.seed == 6 and first.seed == 5


def test_reference_is_empty_for_tasks_without_published_results():
    assert references_for(load_task("digits").name) == {}
    assert references_for(load_task("mqar", n_train=4, n_val=4, n_test=4).name) == {}


@pytest.mark.parametrize("name", list_tasks())
def test_every_listed_task_loads_offline_and_is_well_formed(name, tmp_path):
    task = load_task(name, seed=0, cache_dir=tmp_path, **SMALL.get(name, {}))
    assert_well_formed(task)
    assert task.name == name or task.name.startswith(f"{name}:")  # small parameters show in the name
    assert task.metric == "accuracy" and task.input_spec.target == "classification"
