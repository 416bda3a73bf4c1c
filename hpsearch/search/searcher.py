"""hpsearch's searcher: Optuna's ask/tell behind Ray Tune's `Searcher` interface, telling
Optuna the truth about how each trial ended (public Optuna and Tune APIs only): an
early-stopped or diverged trial is PRUNED (intermediate values at step = epoch), an errored
one FAIL (Ray's OptunaSearch tells a trial ASHA stopped after one epoch COMPLETE). With
`equal_fidelity=True` (the default) new configs come from a TPE fitted at one epoch
(model.py); a share `random_fraction` stays random (BOHB). The driver works on an in-memory
copy of the study; each trial goes into the run's optuna.db once, when it ends, from a writer
thread; every `save` first waits for the writes, so a saved searcher never knows a trial
optuna.db lacks."""

from __future__ import annotations

import logging
import math
import pickle
import random
import warnings
from typing import Callable

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from ray.tune.search import Searcher

from hpsearch import fidelity
from hpsearch.search.model import (
    DIVERGED_ATTR,
    MIN_OBS_START,
    ModelStudy,
    default_min_obs,
    model_picks,
    model_trials,
)
from hpsearch.search.record import (
    _LIVE,
    _UNPICKLED,
    LOST_ATTR,
    TUNE_TRIAL_ATTR,
    RecordWriter,
    flush_all,
)

logger = logging.getLogger(__name__)
__all__ = ["StudySearcher", "TUNE_TRIAL_ATTR", "DIVERGED_ATTR", "LOST_ATTR", "model_trials",
           "flush_all", "default_min_obs", "MIN_OBS_START"]


class StudySearcher(RecordWriter, Searcher):
    """Define-by-run Optuna sampling for Ray Tune.

    Args:
        space_fn: `fn(trial) -> dict` of Tune config values (a module-level function or a
            partial of one, so the searcher pickles by reference for `Tuner.restore`).
        metric, mode: what the trials optimise (also given to TuneConfig).
        sampler: an Optuna sampler.
        storage: an Optuna storage URL or object (the run's sqlite study).
        study_name: a name unique to the run.
        points: configs evaluated first (`Study.enqueue_trial`).
        equal_fidelity: suggest from a TPE fitted at one epoch (see the module doc); the
            study's own `sampler` then only draws the random suggestions.
        min_obs: trials an epoch needs before the model learns from it (default: see above).
        random_fraction: share of suggestions left to `sampler` once the model is fitted.
        seed: seeds the model's TPE and the random/model choice.
        max_trials: how many trials the search runs. The searcher counts them (Tune's own
            count sits in a separate file, which a driver killed while Tune copied its
            state can leave out of step with the trial list; see `sync`).
        budget_epochs, max_epochs: the search's epoch budget and a trial's epochs; a new
            trial waits while the running ones need the rest (`fidelity.room_for_trial`).
    """

    _model_cache: ModelStudy | None = None  # built on first use; not in saved snapshots

    def __init__(self, space_fn: Callable[[optuna.Trial], dict], metric: str, mode: str,
                 sampler: optuna.samplers.BaseSampler, storage, study_name: str,
                 points: list[dict] | None = None, equal_fidelity: bool = False,
                 min_obs: int | None = None, random_fraction: float = 0.2, seed: int = 0,
                 max_trials: int | None = None, budget_epochs: int | None = None,
                 max_epochs: int | None = None) -> None:
        super().__init__(metric=metric, mode=mode)
        self._budget = (budget_epochs, max_epochs) if budget_epochs and max_epochs else None
        self._max_trials, self._count, self._kept, self._reconcile = max_trials, 0, 0, True
        self._equal_fidelity, self._min_obs = equal_fidelity, min_obs
        self._random_fraction, self._seed = random_fraction, seed
        self._rng = random.Random(seed)
        self.model_epochs: list[int | None] = []  # the epoch each suggestion was fitted at
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._space_fn = space_fn
        direction = "maximize" if mode == "max" else "minimize"
        # The driver's working copy (in memory) and the run's record (optuna.db).
        self._study = optuna.create_study(sampler=sampler, direction=direction)
        self._record = optuna.create_study(storage=storage, study_name=study_name,
                                           load_if_exists=True, direction=direction)
        self._record_url = storage if isinstance(storage, str) else None
        self._recorded: set[str] | None = set()  # Tune trials in the record (None: re-read)
        self._queue = self._writer = None
        _LIVE.add(self)
        for point in points or []:
            self._study.enqueue_trial(point)
        self._trials: dict[str, optuna.Trial] = {}
        self._steps: dict[str, set[int]] = {}  # epochs already reported per Tune trial
        self._done: set[str] = set()

    @property
    def study(self) -> optuna.Study:
        """The in-memory study the searcher works on (running trials included)."""
        return self._study

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return not config  # metric/mode: set once in SearchConfig, given to TuneConfig too

    def _model_params(self) -> dict | None:
        """Params a TPE fitted at one epoch suggests, or None (too few trials; random)."""
        trials = self._study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return None  # --points still queued: they go first
        epoch, picked = model_picks(trials, self._min_obs or default_min_obs(trials),
                                    self.mode == "max", start=self._min_obs or MIN_OBS_START)
        self.model_epochs.append(epoch)
        if epoch is None or self._rng.random() < self._random_fraction:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate/group/constant_liar: experimental
            if self._model_cache is None:
                self._model_cache = ModelStudy(self._study.direction)
            model = self._model_cache.study(epoch, picked)
            model.sampler = optuna.samplers.TPESampler(
                seed=self._seed + len(trials), n_startup_trials=0, multivariate=True,
                group=True, constant_liar=True)
            trial = model.ask()
            self._space_fn(trial)
            model.tell(trial, state=TrialState.FAIL)  # TPE never reads FAIL trials
        return trial.params

    def suggest(self, trial_id: str) -> dict | str | None:
        if getattr(self, "_max_trials", None) is not None and self._count >= self._max_trials:
            return Searcher.FINISHED
        if getattr(self, "_budget", None) and not fidelity.room_for_trial(
                *self._budget, {t: max(s, default=0) for t, s in self._steps.items()},
                [t for t in self._trials if t not in self._done]):
            return None  # asked again as trials end
        self._count = getattr(self, "_count", 0) + 1
        if self._equal_fidelity:
            params = self._model_params()
            if params:
                self._study.enqueue_trial(params)
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
        if result.get("status") == "error" or not isinstance(step, int) or (
                step in self._steps[trial_id]):
            return
        self._steps[trial_id].add(step)  # trained (the budget counts it), even if NaN
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return  # NaN/inf: Optuna would reject it
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
        if status == "diverged":
            trial.set_user_attr(DIVERGED_ATTR, True)
        if error or status == "error" or result is None:
            state, values = TrialState.FAIL, None
        elif status == "completed" and finite:
            state, values = TrialState.COMPLETE, float(value)
        else:
            state, values = TrialState.PRUNED, None
        self._study.tell(trial, values, state=state, skip_if_finished=True)
        self._done.add(trial_id)
        self._write(trial_id, trial.number)

    def save(self, checkpoint_path: str) -> None:
        self.flush()
        state = {k: v for k, v in self.__dict__.items() if k not in _UNPICKLED}
        with open(checkpoint_path, "wb") as f:
            pickle.dump(state, f)

    def restore(self, checkpoint_path: str) -> None:
        # The run directory is trusted input (README): Tune's own restore unpickles it too.
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        state.setdefault("_record", None)  # hpsearch < 0.3 worked on optuna.db itself
        self.__dict__.update(state)
        self._queue = self._writer = self._recorded = None  # re-read: trials may have ended
        self._reopen_record()  # after this snapshot, and the record may have been rebuilt
        self._reconcile, self._kept = True, 0
        _LIVE.add(self)

    # -- Tune's trial list: the count of trials, and agreeing with it after a restore ------
    def known_ids(self) -> set[str]:
        """Tune ids of the trials the searcher knows (asked, adopted, or from the record)."""
        return {t.user_attrs.get(TUNE_TRIAL_ATTR) for t in self._study.get_trials(
            deepcopy=False)} - {None}

    @property
    def reconciling(self) -> bool:
        """Whether the next `sync` is the first since a restore."""
        return getattr(self, "_reconcile", False)

    def sync(self, tune_trials: list) -> list[str]:
        """Called with Tune's trials at the start of each Tune step (`ledger.TrialLedger`),
        before Tune asks for new ones: the count `max_trials` is checked against. After a
        restore it first adopts the Tune trials the snapshot lacks (with their configs; told
        their end if they ended) and runs again the configs of those it has and Tune lost
        (told FAIL, user attr `lost`; see ledger.py). Returns the lost trials' Tune ids."""
        lost = self._agree_with(tune_trials) if getattr(self, "_reconcile", False) else []
        self._reconcile = False
        self._count = len(tune_trials) + getattr(self, "_kept", 0)
        return lost

    def _agree_with(self, tune_trials: list) -> list[str]:
        ids, lost = {t.trial_id for t in tune_trials}, []
        unknown = [t for t in tune_trials if t.trial_id not in self._trials]
        for t in unknown:  # first: a config enqueued below would be asked for instead
            self._adopt(t)
        ended = self.ended_in_record()
        newer = [f for tid, f in ended.items()  # ended after the snapshot; not in Tune's list
                 if tid not in ids and tid not in self._trials and tid is not None]
        for frozen in newer:
            self._study.add_trial(frozen)
            self._done.add(frozen.user_attrs[TUNE_TRIAL_ATTR])
            self._kept += 1
        if unknown or newer:  # the snapshot is older: its sampler would draw those configs
            self._study.sampler.reseed_rng()  # again
        for tid, trial in list(self._trials.items()):
            if tid in ids:
                continue
            if tid in self._done or self._tell_as_recorded(trial, ended.get(tid)):
                self._kept += 1  # ended, and in optuna.db (`save` flushes first)
                continue
            trial.set_user_attr(LOST_ATTR, True)
            self._study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            self._done.add(tid)
            self._study.enqueue_trial(trial.params)
            lost.append(tid)
        return lost

    def _tell_as_recorded(self, trial: optuna.Trial, frozen) -> bool:
        """Tell a trial the snapshot has running how optuna.db says it ended, if it did."""
        if frozen is None:
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # steps the snapshot already had
            for step, value in frozen.intermediate_values.items():
                trial.report(value, step)
        for key, value in frozen.user_attrs.items():
            trial.set_user_attr(key, value)
        self._study.tell(trial, frozen.value if frozen.state == TrialState.COMPLETE else None,
                         state=frozen.state, skip_if_finished=True)
        self._done.add(frozen.user_attrs.get(TUNE_TRIAL_ATTR))
        return True

    def _adopt(self, tune_trial) -> None:
        config, requeue = dict(tune_trial.config), []
        ahead = len(self._study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # config keys the space does not suggest
            self._study.enqueue_trial(config)
            for _ in range(ahead + 1):  # configs queued before this one (--points) go back
                trial = self._study.ask()
                made = self._space_fn(trial)
                if all(config.get(k) == v for k, v in made.items()):
                    break
                requeue.append(trial.params)
                self._study.tell(trial, state=TrialState.FAIL)  # no Tune trial: not recorded
        for params in requeue[:ahead]:
            self._study.enqueue_trial(params)
        if len(requeue) > ahead:
            logger.warning("trial %s: its config does not map onto the space; the model "
                           "will not learn from it", tune_trial.trial_id)
            return
        trial.set_user_attr(TUNE_TRIAL_ATTR, tune_trial.trial_id)
        self._trials[tune_trial.trial_id], self._steps[tune_trial.trial_id] = trial, set()
        if tune_trial.is_finished():
            self.on_trial_complete(tune_trial.trial_id, tune_trial.last_result or None,
                                   error=tune_trial.status == tune_trial.ERROR)
