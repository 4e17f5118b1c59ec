"""Optuna's RDB storage, made cheaper for the trials a process runs: batched writes, reads from memory.

Optuna writes each drawn parameter and each user attribute of a trial in a
transaction of its own, 1.3 to 2 ms apiece on SQLite (SQLAlchemy's ORM work, not
the SQL) and twice that on PostgreSQL: 40 to 60 ms per trial of ours, more than
all its other storage calls together. Inside :func:`batched_writes` a trial's
parameters and attributes are kept and written in one transaction when the block
ends, or before any other call that touches trials. Optuna's cached storage
promises no more (a trial's writes must persist once its state does); the
objective ends its first block before training, so the parameters of a trial
whose worker dies are in the database for its retry.

Optuna also reads a trial back whole (six queries) as it starts it, as it ends
it, for the callbacks and, with a pruner, at every epoch; and its cache reads the
trial again, new and ended, before the next. The storage keeps each trial it made
as written while it runs, and as it ended until the next one is made (an ended
trial never changes), and answers those reads from memory. Every write still
checks the trial's state in the database: a trial another worker failed as stale
refuses it, as before.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Container, Iterator

import optuna
from optuna.distributions import BaseDistribution, check_distribution_compatibility, distribution_to_json
from optuna.distributions import json_to_distribution
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState
import sqlalchemy
from sqlalchemy import func


MAX_IDS_ASKED = 500  # by id in one query; past that the storage's own trials are read back like any other


@dataclass
class _Batch:
    """The writes to one trial kept by the thread that opened the batch."""

    thread: int
    params: dict[str, tuple[float, BaseDistribution]] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.params or self.user_attrs or self.system_attrs)

    def take(self) -> _Batch:
        """What is kept, leaving the batch empty."""
        taken = _Batch(self.thread, self.params, self.user_attrs, self.system_attrs)
        self.params, self.user_attrs, self.system_attrs = {}, {}, {}
        return taken


def _flushing_first(method: Callable[..., Any]) -> Callable[..., Any]:
    """A storage method that must see (or follow) this thread's kept writes: they are written first."""

    @functools.wraps(method)
    def flushed(self: SearchStorage, *args: Any, **kwargs: Any) -> Any:
        self.flush()
        return method(self, *args, **kwargs)

    return flushed


class SearchStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, batching a running trial's writes, reading the trials it runs from memory and
    remembering study ids (Optuna's Hyperband pruner looks its study up by name for every parameter a trial
    draws and every epoch it reports, a query each, and a study keeps its id for as long as it exists)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._study_ids: dict[str, int] = {}
        self._batches: dict[int, _Batch] = {}
        self._distributions: dict[tuple[int, str], BaseDistribution] = {}  # first one stored, as Optuna checks
        self._own: dict[int, FrozenTrial] = {}  # trials this storage made: as written, then as ended
        self._own_study: dict[int, int] = {}  # their study ids
        self._lock = threading.Lock()

    def get_study_id_from_name(self, study_name: str) -> int:
        if study_name not in self._study_ids:
            self._study_ids[study_name] = super().get_study_id_from_name(study_name)
        return self._study_ids[study_name]

    def delete_study(self, study_id: int) -> None:
        super().delete_study(study_id)
        self._study_ids = {name: known for name, known in self._study_ids.items() if known != study_id}
        self._distributions = {key: known for key, known in self._distributions.items() if key[0] != study_id}
        self._own = {known: own for known, own in self._own.items() if self._own_study[known] != study_id}
        self._own_study = {known: self._own_study[known] for known in self._own}

    @contextlib.contextmanager
    def batched(self, trial_id: int) -> Iterator[None]:
        """Keep this thread's parameter and attribute writes to ``trial_id`` and write them at the end in one go."""
        with self._lock:
            if trial_id in self._batches:
                raise RuntimeError(f"trial id {trial_id} already has its writes batched")
            self._batches[trial_id] = _Batch(threading.get_ident())
        try:
            yield
        finally:
            try:
                self.flush(trial_id)
            finally:
                with self._lock:
                    del self._batches[trial_id]

    def flush(self, trial_id: int | None = None) -> None:
        """Write what this thread keeps for ``trial_id`` (default: for every trial) in one transaction each."""
        with self._lock:
            batches = list(self._batches.items())
        for kept_for, batch in batches:
            if (trial_id is None or kept_for == trial_id) and batch.thread == threading.get_ident() and batch:
                self._write(kept_for, batch.take())

    def _kept(self, trial_id: int) -> _Batch | None:
        batch = self._batches.get(trial_id)
        return batch if batch is not None and batch.thread == threading.get_ident() else None

    # Writes Optuna makes one transaction each: kept while a batch is open.

    def _set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                         distribution: BaseDistribution, previous_distribution: BaseDistribution | None = None,
                         ) -> None:
        self._keep(trial_id, "params", param_name, (param_value_internal, distribution))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        json.dumps(value)  # refuse what cannot be stored here, where the caller is, not at the flush
        self._keep(trial_id, "user_attrs", key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        json.dumps(value)
        self._keep(trial_id, "system_attrs", key, value)

    def _keep(self, trial_id: int, kind: str, key: str, value: Any) -> None:
        """Keep one write in the open batch, or, with none open, write it now (after this thread's kept ones)."""
        batch = self._kept(trial_id)
        if batch is None:
            self.flush()
            batch = _Batch(threading.get_ident())
            getattr(batch, kind)[key] = value
            self._write(trial_id, batch)
        elif kind == "params":
            batch.params.setdefault(key, value)  # Optuna keeps a parameter's first value too
        else:
            getattr(batch, kind)[key] = value

    def _write(self, trial_id: int, batch: _Batch) -> None:
        """One transaction: the state check Optuna makes for each write, then bulk inserts (and updates of the
        attributes the trial already has: a retry starts with its dead trial's)."""
        running = self._own.get(trial_id)
        with _create_scoped_session(self.scoped_session) as session:
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
            self.check_trial_is_updatable(trial_id, trial.state)
            study_id = trial.study_id
            self._check_distributions(session, study_id, batch.params)
            if batch.params:
                session.execute(sqlalchemy.insert(models.TrialParamModel), [
                    {"trial_id": trial_id, "param_name": name, "param_value": value,
                     "distribution_json": distribution_to_json(distribution)}
                    for name, (value, distribution) in batch.params.items()])
            self._upsert(session, models.TrialUserAttributeModel, trial_id, batch.user_attrs,
                         None if running is None else running.user_attrs.keys())
            self._upsert(session, models.TrialSystemAttributeModel, trial_id, batch.system_attrs,
                         None if running is None else running.system_attrs.keys())
        for name, (_, distribution) in batch.params.items():  # stored now: the first of its name, if none was
            self._distributions.setdefault((study_id, name), distribution)
        if running is not None:
            running.params = {**running.params, **{name: distribution.to_external_repr(value)
                                                   for name, (value, distribution) in batch.params.items()}}
            running.distributions = {**running.distributions,
                                     **{name: distribution for name, (_, distribution) in batch.params.items()}}
            running.user_attrs = {**running.user_attrs, **batch.user_attrs}
            running.system_attrs = {**running.system_attrs, **batch.system_attrs}

    @staticmethod
    def _upsert(session: Any, model: Any, trial_id: int, attrs: dict[str, Any], present: Any) -> None:
        """Insert the new keys in one statement and update the ``present`` ones (read when not known)."""
        if not attrs:
            return
        if present is None:
            present = {key for (key,) in session.query(model.key).filter(model.trial_id == trial_id,
                                                                        model.key.in_(list(attrs)))}
        for key in attrs.keys() & present:
            session.execute(sqlalchemy.update(model).where(model.trial_id == trial_id, model.key == key)
                            .values(value_json=json.dumps(attrs[key])))
        new = [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
               for key, value in attrs.items() if key not in present]
        if new:
            session.execute(sqlalchemy.insert(model), new)

    def count_trials(self, study_id: int, states: tuple[TrialState, ...]) -> int:
        """How many trials of the study are in ``states``: one COUNT, where Optuna reads every trial changed since
        its last look, attributes and all."""
        self.flush()
        with _create_scoped_session(self.scoped_session) as session:
            return session.query(func.count(models.TrialModel.trial_id)).filter(
                models.TrialModel.study_id == study_id, models.TrialModel.state.in_(states)).scalar()

    # The trials this storage made: kept as written while they run, and as they ended until the next is made
    # (an ended trial never changes again). Reads of them need no query.

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        trial = super()._create_new_trial(study_id, template_trial)
        self._own = {known: own for known, own in self._own.items() if not own.state.is_finished()}
        self._own_study = {known: self._own_study[known] for known in self._own}
        if trial.state == TrialState.RUNNING:
            self._own[trial._trial_id] = copy.deepcopy(trial)
            self._own_study[trial._trial_id] = study_id
        return trial

    def _get_trials(self, study_id: int, states: Container[TrialState] | None, included_trial_ids: set[int],
                    trial_id_greater_than: int) -> list[FrozenTrial]:
        """Optuna's cache reads the study's trials with ids above ``trial_id_greater_than`` or in
        ``included_trial_ids`` (its unfinished ones); this storage's own come from memory, and the query asks
        for the others by id up to the newest own one."""
        self.flush()
        own = {known: trial for known, trial in self._own.items() if self._own_study[known] == study_id}
        newest = max(own, default=-1)
        gap = range(trial_id_greater_than + 1, newest)
        if not own or len(gap) > MAX_IDS_ASKED:
            return super()._get_trials(study_id, states, included_trial_ids, trial_id_greater_than)
        wanted = [copy.deepcopy(trial) for known, trial in own.items()
                  if (known > trial_id_greater_than or known in included_trial_ids)
                  and (states is None or trial.state in states)]
        others = (set(included_trial_ids) | set(gap)) - own.keys()
        read = super()._get_trials(study_id, states, others, max(newest, trial_id_greater_than))
        return sorted(read + wanted, key=lambda trial: trial._trial_id)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        self.flush()
        own = self._own.get(trial_id)
        return copy.deepcopy(own) if own is not None else super().get_trial(trial_id)

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        self.flush()
        own = self._own.get(trial_id)
        return copy.deepcopy(own.user_attrs) if own is not None else super().get_trial_user_attrs(trial_id)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        self.flush()
        own = self._own.get(trial_id)
        return copy.deepcopy(own.system_attrs) if own is not None else super().get_trial_system_attrs(trial_id)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self.flush()
        super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        if trial_id in self._own:
            self._own[trial_id].intermediate_values[step] = intermediate_value

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        self.flush()
        own = self._own.pop(trial_id, None)  # refused (another worker ended it): read from the database from now on
        updated = super().set_trial_state_values(trial_id, state, values)
        if own is not None and updated and state.is_finished():
            own.state, own.values = state, values
            with _create_scoped_session(self.scoped_session) as session:  # the end time Optuna gave it
                own.datetime_complete = models.TrialModel.find_or_raise_by_id(trial_id, session).datetime_complete
            self._own[trial_id] = own
        return updated

    def _check_distributions(self, session: Any, study_id: int,
                             params: dict[str, tuple[float, BaseDistribution]]) -> None:
        """A parameter's distribution must be compatible with the one its name was first stored with in the study
        (Optuna's rule); those are read once per name, in one query."""
        unknown = [name for name in params if (study_id, name) not in self._distributions]
        if unknown:
            first = (session.query(func.min(models.TrialParamModel.param_id))
                     .join(models.TrialModel).filter(models.TrialModel.study_id == study_id)
                     .filter(models.TrialParamModel.param_name.in_(unknown))
                     .group_by(models.TrialParamModel.param_name))
            for row in session.query(models.TrialParamModel).filter(models.TrialParamModel.param_id.in_(first)):
                self._distributions[(study_id, row.param_name)] = json_to_distribution(row.distribution_json)
        for name, (_, distribution) in params.items():
            known = self._distributions.get((study_id, name), distribution)
            try:
                check_distribution_compatibility(known, distribution)
            except ValueError as err:
                raise ValueError(f"parameter {name!r} cannot change from {known} to {distribution}: {err}") from None


# Everything else that reads trials comes after this thread's kept writes, as it would have without a batch.
for _name in ("get_all_trials", "get_trial_param", "get_trial_params", "get_best_trial",
              "_get_best_trial_id", "get_n_trials", "get_trial_number_from_id"):
    setattr(SearchStorage, _name, _flushing_first(getattr(optuna.storages.RDBStorage, _name)))


def batched_writes(trial: optuna.Trial) -> contextlib.AbstractContextManager[None]:
    """Inside an objective: keep ``trial``'s parameter and attribute writes and write them in one transaction when
    the block ends (each on its own, as Optuna does, where the study's storage is not a :class:`SearchStorage`)."""
    storage = getattr(trial, "storage", None)  # a FixedTrial has none
    backend = getattr(storage, "_backend", storage)  # Optuna wraps an RDB storage in its cache
    if isinstance(backend, SearchStorage):
        return backend.batched(trial._trial_id)
    return contextlib.nullcontext()


__all__ = ["SearchStorage", "batched_writes"]
