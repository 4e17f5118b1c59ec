"""Multivariate TPE over grouped conditional parameters, drawing only the groups a trial uses.

Optuna's ``TPESampler(multivariate=True, group=True)`` splits the parameters
seen so far into groups that always occur together and models each group
jointly. It draws *every* group when a trial starts, used or not. A search
space with per-block topologies has hundreds of parameter names in ~100 groups
while a trial uses ~30 names, so at 200 trials that eager draw costs about a
second per trial, more than training a pruned candidate. This sampler makes the
same joint draw of a group when the trial first asks for one of its
parameters, and answers the group's other parameters from that draw.

Parameters never seen in a finished trial (or whose distribution differs from
the one the group holds) are drawn on their own by TPE, as Optuna does;
:attr:`LazyGroupTPESampler.fallbacks` counts those, so a test can check that
known parameters are never silently drawn independently.
"""

from __future__ import annotations

from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState


class LazyGroupTPESampler(TPESampler):
    """``TPESampler(multivariate=True, group=True, ...)`` with groups drawn on first use.

    >>> sampler = LazyGroupTPESampler(seed=0)  # other keywords go to TPESampler
    """

    def __init__(self, **kwargs: Any):
        super().__init__(multivariate=True, group=True, **kwargs)
        self._drawn: dict[str, Any] = {}  # values of the groups drawn for the current trial
        self._trial: tuple[int, Study] | None = None  # current trial id, and its (bracket-)filtered study
        self.fallbacks: list[str] = []  # names drawn alone although a group already holds them

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        searched = getattr(study, "_study", None)  # Hyperband hands samplers a view of the study per bracket
        if searched is not None:
            # Its trial cache would be one more read of the storage per trial; the view's cached reads are
            # not filtered by bracket, so it shares the study's: read once per trial (nas.snapshot).
            study._thread_local = searched._thread_local
        super().infer_relative_search_space(study, trial)  # updates the group decomposition
        # Optuna filters the study anew for every parameter; keeping the first one keeps its trial
        # cache, so the trial reads the storage once instead of once per parameter.
        self._drawn, self._trial = {}, (trial._trial_id, study)
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict:
        return {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if self._trial is not None and self._trial[0] == trial._trial_id:
            study = self._trial[1]
        finished = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED), use_cache=True)
        groups = self._search_space_group.search_spaces if self._search_space_group is not None else []
        group = next((g for g in groups if param_name in g), None)
        if len(finished) < self._n_startup_trials or group is None or group[param_name] != param_distribution:
            if group is not None and len(finished) >= self._n_startup_trials:
                self.fallbacks.append(param_name)
            return super().sample_independent(study, trial, param_name, param_distribution)
        if param_name not in self._drawn:
            space = {name: dist for name, dist in sorted(group.items()) if not dist.single()}
            self._drawn.update(self._sample(study, trial, space) if param_name in space else {})
        if param_name not in self._drawn:  # a single-valued distribution: nothing to model
            return super().sample_independent(study, trial, param_name, param_distribution)
        return self._drawn[param_name]
