"""hpsearch's searcher: Optuna's ask/tell behind Ray Tune's `Searcher` interface, telling
Optuna the truth about how each trial ended (public Optuna and Tune APIs only).

Ray's OptunaSearch tells every trial with a final value as COMPLETE, including those ASHA
stopped after one epoch, so TPE treats a 1-epoch score as a finished result. Here an
early-stopped or diverged trial is told PRUNED (Optuna keeps its intermediate values at
step = epoch) and an errored one FAIL."""

from __future__ import annotations

import logging
import math
import pickle
import warnings
from typing import Callable

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from ray.tune.search import Searcher

logger = logging.getLogger(__name__)
__all__ = ["StudySearcher", "TUNE_TRIAL_ATTR"]

TUNE_TRIAL_ATTR = "tune_trial_id"  # user attr tying an Optuna trial to its Tune trial


class StudySearcher(Searcher):
    """Define-by-run Optuna sampling for Ray Tune.

    Args:
        space_fn: `fn(trial) -> dict` of Tune config values (a module-level function or a
            partial of one, so the searcher pickles by reference for `Tuner.restore`).
        metric, mode: what the trials optimise (also given to TuneConfig).
        sampler: an Optuna sampler.
        storage: an Optuna storage URL or object (the run's sqlite study).
        study_name: a name unique to the run.
        points: configs evaluated first (`Study.enqueue_trial`).
    """

    def __init__(self, space_fn: Callable[[optuna.Trial], dict], metric: str, mode: str,
                 sampler: optuna.samplers.BaseSampler, storage, study_name: str,
                 points: list[dict] | None = None) -> None:
        super().__init__(metric=metric, mode=mode)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._space_fn = space_fn
        self._study = optuna.create_study(
            storage=storage, study_name=study_name, sampler=sampler, load_if_exists=True,
            direction="maximize" if mode == "max" else "minimize")
        for point in points or []:
            self._study.enqueue_trial(point)
        self._trials: dict[str, optuna.Trial] = {}
        self._steps: dict[str, set[int]] = {}  # epochs already reported per Tune trial
        self._done: set[str] = set()

    @property
    def study(self) -> optuna.Study:
        return self._study

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        # metric/mode are set once in SearchConfig and passed to both this and TuneConfig.
        return not config

    def suggest(self, trial_id: str) -> dict | None:
        trial = self._study.ask()
        trial.set_user_attr(TUNE_TRIAL_ATTR, trial_id)
        config = self._space_fn(trial)
        self._trials[trial_id] = trial
        self._steps[trial_id] = set()
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Report the metric as an intermediate value at step = epoch (not Tune's iteration
        count, which restarts differently after a crash)."""
        trial = self._trials.get(trial_id)
        if trial is None or trial_id in self._done:
            return
        value, step = result.get(self.metric), result.get("epoch")
        if (result.get("status") == "error" or not isinstance(value, (int, float))
                or not math.isfinite(value) or not isinstance(step, int)
                or step in self._steps[trial_id]):
            return  # NaN/inf or an error row: Optuna would reject it
        self._steps[trial_id].add(step)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a step reported before a driver crash
                trial.report(float(value), step)
        except UpdateFinishedTrialError:
            self._done.add(trial_id)  # told before a crash; the snapshot predates it

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        trial = self._trials.get(trial_id)
        if trial is None or trial_id in self._done:
            return
        if result:
            # The result that made the scheduler stop a trial never reaches on_trial_result.
            self.on_trial_result(trial_id, result)
        status = (result or {}).get("status")
        value = (result or {}).get(self.metric)
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        if error or status == "error" or result is None:
            state, values = TrialState.FAIL, None
        elif status == "completed" and finite:
            state, values = TrialState.COMPLETE, float(value)
        else:
            state, values = TrialState.PRUNED, None
        self._study.tell(trial, values, state=state, skip_if_finished=True)
        self._done.add(trial_id)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        # The run directory is trusted input (README): Tune's own restore unpickles it too.
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
