"""Optuna's RDB storage, made cheaper for the trials a process runs: writes kept and batched, reads from memory.

Optuna writes each drawn parameter, each attribute and each epoch's value of a
trial in a transaction of its own, 1.3 to 3.5 ms apiece on SQLite (SQLAlchemy's
ORM work, not the SQL) and twice that on PostgreSQL, and reads the trial back
whole (six queries) as it starts it, ends it, calls the callbacks and, with a
pruner, at every epoch.

This storage keeps the writes to each trial it runs and writes them in one
transaction:

- when a :meth:`SearchStorage.batched` block ends: the objective ends one before
  training, so the parameters of a trial whose worker dies are there for its retry;
- with the trial's state, when it ends;
- at once, for an epoch's value reported :data:`WRITE_BEHIND_SECONDS` or more
  after the trial's last write (an epoch that long is written as Optuna writes it),
  taking along what was kept (the pruner's rungs): other workers' pruners and a
  dashboard see a running trial's learning curve about that late at most.

It answers reads of those trials from memory: as written (kept writes included)
while they run, and as they ended until a read of their study has returned them
(an ended trial never changes, and Optuna's cache never asks for it again), and
asks the database for other workers' trials only when there may be some to read
(see :meth:`SearchStorage._get_trials`). Every write still checks the trial's
state in the database: a trial another worker failed as stale refuses it, as
before, and is read from the database from then on.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Collection, Iterator, Sequence

import optuna
from optuna.distributions import BaseDistribution, check_distribution_compatibility, distribution_to_json
from optuna.distributions import json_to_distribution
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState
import sqlalchemy

from nas.storage_sql import DriverSQL, Transaction, marks

MAX_IDS_ASKED = 500  # by id in one query; past that the storage's own trials are read back like any other
ENDED_KEPT = 16  # ended trials kept in memory at most, for a study no one reads
WRITE_BEHIND_SECONDS = 1.0  # an epoch's value this long after a running trial's last write goes at once
ROWS_PER_STATEMENT = 200  # of an INSERT's VALUES list: far below SQLite's and PostgreSQL's caps on parameters
OTHERS_ASKED_SECONDS = 1.0  # with no other trial running, the database is asked for new ones this often at most

_STATE = "SELECT state, study_id FROM trials WHERE trial_id = ?"
# Where a write to a trial's rows holds: the trial is not finished (Optuna's rule), as the statement sees it; the
# transaction locks the trial first (SQLite's BEGIN IMMEDIATE locks the database), so each sees what the others do.
_LIVE = "EXISTS (SELECT 1 FROM trials WHERE trial_id = ? AND state IN ('RUNNING', 'WAITING'))"


@dataclass
class _Kept:
    """Writes to one trial not in the database yet, and the keys of its records that are (None: not known)."""

    params: dict[str, tuple[float, BaseDistribution]] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)
    intermediate_values: dict[int, float] = field(default_factory=dict)
    last_write: float = field(default_factory=time.monotonic)  # when the trial was last written (monotonic clock)
    held: int = 0  # open batched blocks: written when the last one ends, whatever the age
    stored: dict[str, set] | None = None  # "user_attrs", "system_attrs", "intermediate_values": keys written

    def __bool__(self) -> bool:
        return bool(self.params or self.user_attrs or self.system_attrs or self.intermediate_values)

    def take(self) -> _Kept:
        """What is kept, leaving nothing kept."""
        taken = _Kept(self.params, self.user_attrs, self.system_attrs, self.intermediate_values)
        self.params, self.user_attrs, self.system_attrs, self.intermediate_values = {}, {}, {}, {}
        return taken

    def written_ago(self) -> float:
        return time.monotonic() - self.last_write


def _flushing_first(method: Callable[..., Any]) -> Callable[..., Any]:
    """A storage method that reads the database where kept writes belong: they are written first."""

    @functools.wraps(method)
    def flushed(self: SearchStorage, *args: Any, **kwargs: Any) -> Any:
        self.flush()
        return method(self, *args, **kwargs)

    return flushed


class SearchStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, keeping a running trial's writes to write them together, reading the trials it runs
    from memory and remembering study ids (Optuna's Hyperband pruner looks its study up by name for every
    parameter a trial draws and every epoch it reports, a query each, and a study keeps its id while it exists)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._study_ids: dict[str, int] = {}
        self._distributions: dict[tuple[int, str], BaseDistribution] = {}  # first one stored, as Optuna checks
        self._kept: dict[int, _Kept] = {}  # this storage's running trials, and trials in a batched block
        self._own: dict[int, FrozenTrial] = {}  # trials this storage runs (as written) or ran (as ended)
        self._own_study: dict[int, int] = {}  # their study ids
        self._lock = threading.RLock()  # kept writes are taken and written under it, so in the order made
        self._sql = DriverSQL(self.engine)  # the statements every trial makes, without Core's Python
        self._beaten: set[int] = set()  # trials made here whose first heartbeat went with them
        self._stale_checked: dict[int, float] = {}  # study id: when its stale trials were last looked for
        self._others_asked: dict[int, float] = {}  # study id: when other workers' trials were last asked for
        self._ended_counts: tuple[int, dict[TrialState, int]] | None = None  # see counts_when_ended

    def get_study_id_from_name(self, study_name: str) -> int:
        if study_name not in self._study_ids:
            self._study_ids[study_name] = super().get_study_id_from_name(study_name)
        return self._study_ids[study_name]

    def delete_study(self, study_id: int) -> None:
        super().delete_study(study_id)
        with self._lock:
            self._study_ids = {name: known for name, known in self._study_ids.items() if known != study_id}
            self._distributions = {key: known for key, known in self._distributions.items() if key[0] != study_id}
            for trial_id in [known for known, study in self._own_study.items() if study == study_id]:
                self._forget(trial_id)

    @contextlib.contextmanager
    def batched(self, trial_id: int) -> Iterator[None]:
        """Keep the writes to ``trial_id`` (run here or not) and write them in one transaction when the block ends."""
        with self._lock:
            kept = self._kept.setdefault(trial_id, _Kept())
            kept.held += 1
        try:
            yield
        finally:
            with self._lock:
                kept.held -= 1
                try:
                    if not kept.held:
                        self.flush(trial_id)
                finally:
                    if not kept.held and trial_id not in self._own:
                        self._kept.pop(trial_id, None)

    def flush(self, trial_id: int | None = None) -> None:
        """Write what is kept for ``trial_id`` (default: for every trial), one transaction each."""
        with self._lock:
            for kept_for in [trial_id] if trial_id is not None else list(self._kept):
                kept = self._kept.get(kept_for)
                if kept:
                    self._write(kept_for, kept)

    # Writes Optuna makes one transaction each: kept for this storage's running trials and in batched blocks.

    def _set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                         distribution: BaseDistribution, previous_distribution: BaseDistribution | None = None,
                         ) -> None:
        self._keep(trial_id, "params", param_name, (param_value_internal, distribution))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._keep(trial_id, "user_attrs", key, _as_stored(value))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._keep(trial_id, "system_attrs", key, _as_stored(value))

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._keep(trial_id, "intermediate_values", step, float(intermediate_value))

    def _keep(self, trial_id: int, kind: str, key: Any, value: Any) -> None:
        """Keep one write, or write it now (with what is kept): for a trial nothing is kept for, and for an epoch's
        value outside a batched block when the trial's last write is :data:`WRITE_BEHIND_SECONDS` old."""
        with self._lock:
            kept = self._kept.get(trial_id)
            if kept is None:
                kept = _Kept()
                getattr(kept, kind)[key] = value
                self._write(trial_id, kept)
                return
            if kind == "params":
                if key in kept.params:
                    return  # Optuna keeps a parameter's first value too
            getattr(kept, kind)[key] = value
            own = self._own.get(trial_id)
            if own is not None:
                _apply(own, kind, key, value)
            if kind == "intermediate_values" and not kept.held and kept.written_ago() >= WRITE_BEHIND_SECONDS:
                self._write(trial_id, kept)

    def _write(self, trial_id: int, kept: _Kept) -> None:
        """One transaction (one round trip to PostgreSQL): what is kept, written if the trial is not finished,
        and its state read back with COMMIT for the check Optuna makes for each write."""
        batch = kept.take()
        try:
            with self._sql.transaction() as transaction:
                self._lock_trial(transaction, trial_id)
                self._insert(transaction, trial_id, self._own_study.get(trial_id), batch, kept.stored)
                state, study_id = _state_of(transaction.run_last(_STATE, trial_id).first())
            self.check_trial_is_updatable(trial_id, state)  # out of the transaction: it reads the trial
        except BaseException:
            self._forget(trial_id)  # refused, or half known: the database says what this trial holds
            raise
        self._stored(study_id, kept, batch)

    def _lock_trial(self, transaction: Transaction, trial_id: int) -> None:
        """Hold the trial's row till the transaction ends: a worker failing it as stale waits (PostgreSQL)."""
        if self._sql.postgres:
            transaction.run_many("SELECT trial_id FROM trials WHERE trial_id = ? FOR UPDATE", [(trial_id,)])

    def _insert(self, transaction: Transaction, trial_id: int, study_id: int | None, batch: _Kept,
                stored: dict[str, set] | None) -> None:
        """Bulk inserts of ``batch``, and updates of the keys the trial has already (``stored``, or read when not
        known; a retry starts with its dead trial's attributes), each made only while the trial is not finished:
        nothing is read before them (study ids are known for this storage's own trials)."""
        if batch.params:
            if study_id is None:  # a trial another storage runs
                study_id = _state_of(transaction.run(_STATE, trial_id).first())[1]
            self._check_distributions(transaction, study_id, batch.params)
        _insert_live(transaction, "trial_params", ("param_name", "param_value", "distribution_json"), trial_id,
                     [(name, value, distribution_to_json(distribution))
                      for name, (value, distribution) in batch.params.items()], as_text=True)
        stored = stored or {}
        for kind, table in (("user_attrs", "trial_user_attributes"), ("system_attrs", "trial_system_attributes")):
            _upsert(transaction, table, "key", ("value_json",), trial_id, stored.get(kind),
                    {key: (json.dumps(value),) for key, value in getattr(batch, kind).items()}, as_text=True)
        _upsert(transaction, "trial_intermediate_values", "step", ("intermediate_value", "intermediate_value_type"),
                trial_id, stored.get("intermediate_values"),
                {step: _by_name(models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value))
                 for step, value in batch.intermediate_values.items()}, as_text=False)

    def _stored(self, study_id: int, kept: _Kept, written: _Kept) -> None:
        """Once committed: the keys now in the database, and the distributions first stored with their names."""
        kept.last_write = time.monotonic()
        if kept.stored is not None:
            for kind, keys in kept.stored.items():
                keys.update(getattr(written, kind))
        for name, (_, distribution) in written.params.items():
            self._distributions.setdefault((study_id, name), distribution)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        """Optuna's, in one UPDATE that checks the state it changes, with what is kept for the trial written in
        the same transaction before it, and a trial that ends here counts its study's trials by state in it
        (:meth:`counts_when_ended`): one round trip to PostgreSQL."""
        if state != TrialState.RUNNING and not state.is_finished():  # back to waiting: Optuna's own
            self.flush(trial_id)
            return super().set_trial_state_values(trial_id, state, values)
        with self._lock:
            kept = self._kept.get(trial_id) or _Kept()
            batch, now = kept.take(), datetime.now()
            if state == TrialState.RUNNING:
                before, column = ("WAITING",), "datetime_start"
            else:
                before, column = ("WAITING", "RUNNING"), "datetime_complete"
            try:
                with self._sql.transaction() as transaction:
                    self._lock_trial(transaction, trial_id)
                    self._insert(transaction, trial_id, self._own_study.get(trial_id), batch, kept.stored)
                    transaction.run_many(  # values come only with a finishing state: they go where it does
                        f"INSERT INTO trial_values (trial_id, objective, value, value_type) SELECT ?, ?, ?, ? "
                        f"WHERE {_LIVE}",
                        [(trial_id, objective, *_by_name(models.TrialValueModel.value_to_stored_repr(value)), trial_id)
                         for objective, value in enumerate(values or ())])
                    changed = transaction.run_later(
                        f"UPDATE trials SET state = ?, {column} = ? WHERE trial_id = ? AND state IN ({marks(before)}) "
                        "RETURNING study_id", state.name, self._sql.stamp(now), trial_id, *before)
                    counted = transaction.run_last(  # the study's trials by state, this one's new state included
                        "SELECT state, count(*) FROM trials WHERE study_id = (SELECT study_id FROM trials "
                        "WHERE trial_id = ?) GROUP BY state", trial_id) if state.is_finished() else None
                study_id = changed().scalar()
                updated = study_id is not None
                if not updated:  # finished (refused, as Optuna does), or asked to run while not waiting
                    found, study_id = _state_of(self._sql.read(_STATE, trial_id).first())
                    if found.is_finished():
                        self.check_trial_is_updatable(trial_id, found)
            except sqlalchemy.exc.IntegrityError:
                self._forget(trial_id)
                return False
            except BaseException:
                self._forget(trial_id)
                raise
            self._stored(study_id, kept, batch)
            own = self._own.get(trial_id)
            if updated and state.is_finished():
                self._ended_counts = (trial_id, {TrialState[name]: count for name, count in counted})
                self._beaten.discard(trial_id)  # ended before its heartbeat thread's first beat: none to skip
                if not kept.held:
                    self._kept.pop(trial_id, None)
                if own is not None:
                    own.state, own.values, own.datetime_complete = state, None if values is None else list(values), now
            elif updated and state == TrialState.RUNNING:  # a waiting trial (a retry) this storage now runs
                self._run(study_id, super().get_trial(trial_id))
            return updated

    # The trials this storage runs: kept as written while they run, and as they ended until a read of their study
    # returned them so (an ended trial never changes, and Optuna's cache never asks for it again). Reads of them
    # need no query.

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        if template_trial is None:
            trial = self._create_running_trial(study_id)
        else:  # a retry or an enqueued trial: Optuna's own
            trial = super()._create_new_trial(study_id, template_trial)
        with self._lock:
            for ended in [known for known, own in self._own.items() if own.state.is_finished()][:-ENDED_KEPT]:
                self._forget(ended)
            if trial.state == TrialState.RUNNING:
                self._run(study_id, trial)
        return trial

    def _create_running_trial(self, study_id: int) -> FrozenTrial:
        """Optuna's new trial, numbered as Optuna numbers it (the study's trials made before it, counted while
        the study is locked: every one of them has a smaller id, as Optuna's own trials made there lock it too),
        without the ORM, and its first heartbeat when heartbeats are on: on PostgreSQL, one round trip."""
        now = datetime.now()
        with self._sql.transaction() as transaction:
            if self._sql.postgres:  # locked before the count is read (SQLite's BEGIN IMMEDIATE locks everything)
                transaction.run_many("SELECT study_id FROM studies WHERE study_id = ? FOR UPDATE", [(study_id,)])
            transaction.run_many(
                "INSERT INTO trials (number, study_id, state, datetime_start) "
                "SELECT (SELECT count(*) FROM trials WHERE study_id = ?), study_id, ?, ? FROM studies "
                "WHERE study_id = ?", [(study_id, "RUNNING", self._sql.stamp(now), study_id)])
            if self.heartbeat_interval is not None:  # the study's newest trial, while it is locked: this one
                transaction.run_many(
                    "INSERT INTO trial_heartbeats (trial_id, heartbeat) SELECT trial_id, CURRENT_TIMESTAMP "
                    "FROM trials WHERE study_id = ? ORDER BY trial_id DESC LIMIT 1", [(study_id,)])
            made = transaction.run_last(
                "SELECT trial_id, number FROM trials WHERE study_id = ? ORDER BY trial_id DESC LIMIT 1", study_id).first()
        if made is None:
            raise KeyError(models.NOT_FOUND_MSG)
        trial_id, number = made
        if self.heartbeat_interval is not None:
            self._beaten.add(trial_id)
        return FrozenTrial(number=number, state=TrialState.RUNNING, value=None, values=None, datetime_start=now,
                           datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs={},
                           intermediate_values={}, trial_id=trial_id)

    def record_heartbeat(self, trial_id: int) -> None:
        """Optuna's, in two statements without the ORM and nothing read: one round trip to PostgreSQL. A trial
        made here had its first heartbeat written with it, so the one its heartbeat thread writes as it starts is
        not written again: it would take the database's write lock as the trial sets out, for 1 to 2 ms of the
        ORM's work on SQLite."""
        if trial_id in self._beaten:
            self._beaten.discard(trial_id)
            return
        with self._sql.transaction() as transaction:
            transaction.run_many("UPDATE trial_heartbeats SET heartbeat = CURRENT_TIMESTAMP WHERE trial_id = ?",
                                 [(trial_id,)])
            transaction.run_many(
                "INSERT INTO trial_heartbeats (trial_id, heartbeat) SELECT ?, CURRENT_TIMESTAMP "
                "WHERE NOT EXISTS (SELECT 1 FROM trial_heartbeats WHERE trial_id = ?)", [(trial_id, trial_id)])

    def _run(self, study_id: int, trial: FrozenTrial) -> None:
        self._own[trial._trial_id] = copy.deepcopy(trial)
        self._own_study[trial._trial_id] = study_id
        kept = self._kept.setdefault(trial._trial_id, _Kept())
        kept.last_write = time.monotonic()  # made, or started: just written
        kept.stored = {"user_attrs": set(trial.user_attrs), "system_attrs": set(trial.system_attrs),
                       "intermediate_values": set(trial.intermediate_values)}

    def _forget(self, trial_id: int) -> None:
        """Read ``trial_id`` from the database from now on; its kept writes are dropped (they were refused)."""
        self._own.pop(trial_id, None)
        self._own_study.pop(trial_id, None)
        kept = self._kept.get(trial_id)
        if kept is not None and not kept.held:
            del self._kept[trial_id]
        elif kept is not None:
            kept.take()
            kept.stored = None

    def _get_trials(self, study_id: int, states: Collection[TrialState] | None, included_trial_ids: set[int],
                    trial_id_greater_than: int) -> list[FrozenTrial]:
        """Optuna's cache reads the study's trials with ids above ``trial_id_greater_than`` or in
        ``included_trial_ids`` (its unfinished ones); this storage's own come from memory, and a bare query of
        ids asks whether there are others (with one worker, never) before they are read whole.

        While the cache knows of no other trial that is unfinished or missing, that query is made at most once
        every :data:`OTHERS_ASKED_SECONDS`: a lone worker's Optuna reads the study three to five times a trial
        (waiting trials, the objective, the pruner at each rung). What it could find then is only trials made
        after this storage's newest: one made before it has a smaller id, above the cache's last finished trial
        (trials are made while their study is locked), so it is asked for as missing. A trial's first read
        sees every trial made before it, as the objective's surplus check needs, and another worker's new
        trial is seen up to that much later, as its learning curve is (:data:`WRITE_BEHIND_SECONDS`)."""
        with self._lock:
            own = {known: trial for known, trial in self._own.items() if self._own_study[known] == study_id}
            newest = max(own, default=-1)
            gap = range(trial_id_greater_than + 1, newest)
            if not own or len(gap) > MAX_IDS_ASKED:
                self.flush()
                return super()._get_trials(study_id, states, included_trial_ids, trial_id_greater_than)
            wanted = [_snapshot(trial) for known, trial in own.items()
                      if (known > trial_id_greater_than or known in included_trial_ids)
                      and (states is None or trial.state in states)]
            for trial in wanted:
                if trial.state.is_finished() and trial._trial_id != newest:  # the newest keeps the others' query short
                    self._forget(trial._trial_id)
        asked = (set(included_trial_ids) | set(gap)) - own.keys()
        above = max(newest, trial_id_greater_than)
        if not asked and time.monotonic() - self._others_asked.get(study_id, -math.inf) < OTHERS_ASKED_SECONDS:
            return sorted(wanted, key=lambda trial: trial._trial_id)  # no other worker's trial to read again
        self._others_asked[study_id] = time.monotonic()
        others = [trial_id for trial_id, in self._sql.read(
            "SELECT trial_id FROM trials WHERE study_id = ? AND (trial_id > ?"
            + (f" OR trial_id IN ({marks(asked)}))" if asked else ")") + _in_states(states),
            study_id, above, *asked, *_names(states))]
        read = super()._get_trials(study_id, states, set(others), max(*others, above)) if others else []
        return sorted([trial for trial in read if trial._trial_id not in own] + wanted,
                      key=lambda trial: trial._trial_id)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._read(trial_id, lambda trial: trial, super().get_trial)

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._read(trial_id, lambda trial: trial.user_attrs, super().get_trial_user_attrs)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._read(trial_id, lambda trial: trial.system_attrs, super().get_trial_system_attrs)

    def _read(self, trial_id: int, part: Callable[[FrozenTrial], Any], from_database: Callable[[int], Any]) -> Any:
        """``part`` of a snapshot of this storage's own trial ``trial_id``; for any other, the database's."""
        with self._lock:
            own = self._own.get(trial_id)
            if own is not None:
                return part(_snapshot(own))
            self.flush(trial_id)  # kept in a batched block
        return from_database(trial_id)

    def counts_when_ended(self, trial_id: int) -> dict[TrialState, int] | None:
        """The study's trials by state as the transaction that ended ``trial_id`` here left them; None unless it
        is the last trial this storage ended. A search's callback asks as the trial ends, a query saved."""
        if self._ended_counts is None or self._ended_counts[0] != trial_id:
            return None
        return dict(self._ended_counts[1])

    def count_trials(self, study_id: int, states: tuple[TrialState, ...]) -> int:
        """How many trials of the study are in ``states``: one COUNT, where Optuna reads every trial changed since
        its last look, attributes and all."""
        (count,), = self._sql.read("SELECT count(*) FROM trials WHERE study_id = ?" + _in_states(states),
                                   study_id, *_names(states))
        return count

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Optuna's: the study's running trials whose last heartbeat is older than the grace period by the
        database's clock, in one query instead of two and the ORM's loading. Optuna looks before every trial; a
        trial goes stale only a grace period (two heartbeats or more) after its last beat, so a look within a
        heartbeat interval of the last one is skipped: a stale trial is found at most that much later."""
        assert self.heartbeat_interval is not None
        now = time.monotonic()
        if now - self._stale_checked.get(study_id, -math.inf) < self.heartbeat_interval:
            return []
        self._stale_checked[study_id] = now
        grace = timedelta(seconds=self.grace_period if self.grace_period is not None else 2 * self.heartbeat_interval)
        rows = self._sql.read(
            "SELECT trials.trial_id, trial_heartbeats.heartbeat, CURRENT_TIMESTAMP FROM trials "
            "JOIN trial_heartbeats ON trial_heartbeats.trial_id = trials.trial_id "
            "WHERE trials.study_id = ? AND trials.state = ?", study_id, "RUNNING")
        moment = self._sql.moment
        return [trial_id for trial_id, beat, now in rows if moment(now).replace(tzinfo=None) - moment(beat) > grace]

    def _check_distributions(self, transaction: Transaction, study_id: int,
                             params: dict[str, tuple[float, BaseDistribution]]) -> None:
        """A parameter's distribution must be compatible with the one its name was first stored with in the study
        (Optuna's rule); those are read once per name, in one query."""
        unknown = [name for name in params if (study_id, name) not in self._distributions]
        if unknown:
            for name, stored in transaction.run(
                    "SELECT param_name, distribution_json FROM trial_params WHERE param_id IN ("
                    "SELECT min(trial_params.param_id) FROM trial_params JOIN trials "
                    "ON trials.trial_id = trial_params.trial_id WHERE trials.study_id = ? "
                    f"AND trial_params.param_name IN ({marks(unknown)}) GROUP BY trial_params.param_name)",
                    study_id, *unknown):
                self._distributions[(study_id, name)] = json_to_distribution(stored)
        for name, (_, distribution) in params.items():
            known = self._distributions.get((study_id, name), distribution)
            try:
                check_distribution_compatibility(known, distribution)
            except ValueError as err:
                raise ValueError(f"parameter {name!r} cannot change from {known} to {distribution}: {err}") from None


def _as_stored(value: Any) -> Any:
    """An attribute's value as a read of the database returns it (tuples come back as lists), refused here, where
    the caller is, when it cannot be stored; it is the caller's object no more, so it can be shared unchanged."""
    return json.loads(json.dumps(value))


def _snapshot(trial: FrozenTrial) -> FrozenTrial:
    """A copy of one of this storage's own trials for a caller, who may change its dicts and lists; the values in
    them are shared (a deep copy of each took 0.1 ms, ten or more a trial) and never changed in place here: a
    write replaces them, and Optuna's cache hands out its finished trials themselves."""
    copied = copy.copy(trial)
    copied.params, copied.distributions = dict(trial.params), dict(trial.distributions)
    copied.user_attrs, copied.system_attrs = dict(trial.user_attrs), dict(trial.system_attrs)
    copied.intermediate_values = dict(trial.intermediate_values)
    copied.values = None if trial.values is None else list(trial.values)
    return copied


def _apply(trial: FrozenTrial, kind: str, key: Any, value: Any) -> None:
    """One kept write, made to the in-memory copy of its trial."""
    if kind == "params":
        internal, distribution = value
        trial.params[key] = distribution.to_external_repr(internal)
        trial.distributions = {**trial.distributions, key: distribution}
    else:
        getattr(trial, kind)[key] = value


def _upsert(transaction: Transaction, table: str, key: str, columns: tuple[str, ...], trial_id: int,
            present: set | None, rows: dict[Any, tuple], as_text: bool) -> None:
    """Insert the rows of new keys (see :func:`_insert_live`) and update those ``present`` (read when not known)."""
    if not rows:
        return
    if present is None:
        keys = list(rows)
        present = {known for known, in transaction.run(
            f"SELECT {key} FROM {table} WHERE trial_id = ? AND {key} IN ({marks(keys)})", trial_id, *keys)}
    assignments = ", ".join(f"{column} = ?" for column in columns)
    transaction.run_many(f"UPDATE {table} SET {assignments} WHERE trial_id = ? AND {key} = ? AND {_LIVE}",
                         [(*rows[known], trial_id, known, trial_id) for known in rows.keys() & present])
    _insert_live(transaction, table, (key, *columns), trial_id,
                 [(known, *values) for known, values in rows.items() if known not in present], as_text)


def _insert_live(transaction: Transaction, table: str, columns: tuple[str, ...], trial_id: int, rows: list[tuple],
                 as_text: bool) -> None:
    """Insert ``rows`` (values of ``columns``) of ``trial_id`` while it is not finished. Rows whose values the
    table takes as text (``as_text``: PostgreSQL reads the parameters of a VALUES list so, which an enum column
    refuses) go as one VALUES list a statement: psycopg spends 40 to 80 us of Python on each statement it sends
    in a pipeline, more than the server does, and a trial's records are some thirty rows."""
    if not as_text:
        transaction.run_many(f"INSERT INTO {table} (trial_id, {', '.join(columns)}) SELECT ?, {marks(columns)} "
                             f"WHERE {_LIVE}", [(trial_id, *row, trial_id) for row in rows])
        return
    picked = ", ".join(f"v.column{i}" for i in range(1, len(columns) + 1))  # a VALUES list's names in both
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start:start + ROWS_PER_STATEMENT]
        listed = ", ".join(f"({marks(row)})" for row in chunk)
        transaction.run_many(f"INSERT INTO {table} (trial_id, {', '.join(columns)}) SELECT ?, {picked} "
                             f"FROM (VALUES {listed}) AS v WHERE {_LIVE}",
                             [(trial_id, *(value for row in chunk for value in row), trial_id)])


def _state_of(found: tuple[str, int] | None) -> tuple[TrialState, int]:
    """A trial's state and study from its row read with :data:`_STATE` (None: there is no such trial)."""
    if found is None:
        raise KeyError(models.NOT_FOUND_MSG)
    state, study_id = found
    return TrialState[state], study_id


def _by_name(stored: tuple[float | None, Any]) -> tuple[float | None, str]:
    """Optuna's stored form of a value (a float, or None and its kind), the kind as its enum stores it."""
    value, kind = stored
    return value, kind.name


def _names(states: Collection[TrialState] | None) -> list[str]:
    return [] if states is None else [state.name for state in states]


def _in_states(states: Collection[TrialState] | None) -> str:
    """`` AND state IN (?, ...)`` for ``states`` (None: any); no state matches none."""
    if states is None:
        return ""
    return f" AND state IN ({marks(list(states))})" if states else " AND 1 = 0"


# Everything else that reads trials from the database comes after the kept writes, as it would have without them.
for _name in ("get_all_trials", "get_trial_param", "get_trial_params", "get_best_trial", "_get_best_trial_id"):
    setattr(SearchStorage, _name, _flushing_first(getattr(optuna.storages.RDBStorage, _name)))


def batched_writes(trial: optuna.Trial) -> contextlib.AbstractContextManager[None]:
    """Inside an objective: keep ``trial``'s writes and write them in one transaction when the block ends (each on
    its own, as Optuna does, where the study's storage is not a :class:`SearchStorage`)."""
    storage = getattr(trial, "storage", None)  # a FixedTrial has none
    backend = getattr(storage, "_backend", storage)  # Optuna wraps an RDB storage in its cache
    if isinstance(backend, SearchStorage):
        return backend.batched(trial._trial_id)
    return contextlib.nullcontext()


__all__ = ["OTHERS_ASKED_SECONDS", "SearchStorage", "WRITE_BEHIND_SECONDS", "batched_writes"]
