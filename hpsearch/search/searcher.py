"""hpsearch's searcher: Optuna's ask/tell behind Ray Tune's `Searcher` interface, telling
Optuna the truth about how each trial ended (public Optuna and Tune APIs only).

Ray's OptunaSearch tells every trial with a final value as COMPLETE, including those ASHA
stopped after one epoch, so TPE treats a 1-epoch score as a finished result. Here an
early-stopped or diverged trial is told PRUNED (Optuna keeps its intermediate values at
step = epoch) and an errored one FAIL.

With `equal_fidelity=True` (hpsearch's default) new configs come from a TPE fitted at one
epoch: the highest that `min_obs` trials reached (BOHB's rule; by default twice the number
of parameters, 8 until an epoch has that many), on every trial's score *at that epoch*;
trials that diverged before it count as the worst, running ones as pending (constant liar).
Optuna's own TPE on the study instead puts the trials that ran longest first: whatever early
stopping promoted, on crossing curves the fast starters that end worse. A share
`random_fraction` of suggestions stays random (as in BOHB) so a misleading model cannot
lock the search in one region.

The driver works on an in-memory copy of the study; each trial goes into the run's storage
(optuna.db) once, when it ends, from a writer thread (writing every parameter and epoch as
it happened cost ~0.1 s of driver time per trial). Every `save` (Tune's experiment
checkpoints) first waits for the writes, so a saved searcher never knows a trial optuna.db
lacks."""

from __future__ import annotations

import copy
import logging
import math
import pickle
import queue
import random
import threading
import warnings
import weakref
from typing import Callable

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState, create_trial
from ray.tune.search import Searcher

from hpsearch import fidelity

logger = logging.getLogger(__name__)
__all__ = ["StudySearcher", "TUNE_TRIAL_ATTR", "DIVERGED_ATTR", "model_trials", "flush_all",
           "default_min_obs"]
_LIVE: "weakref.WeakSet[StudySearcher]" = weakref.WeakSet()
_UNPICKLED = ("_queue", "_writer")  # the writer thread lives and dies with its process


def flush_all() -> None:
    """Wait until every searcher of this process has written its ended trials."""
    for searcher in list(_LIVE):
        searcher.flush()

TUNE_TRIAL_ATTR = "tune_trial_id"  # user attr tying an Optuna trial to its Tune trial
DIVERGED_ATTR = "diverged"


def model_trials(trials: list, min_obs: int, maximize: bool,
                 start: int | None = None) -> tuple[int | None, list]:
    """What the equal-fidelity model is told: (epoch, frozen trials valued at that epoch).

    Finished or running trials with a score at the chosen epoch keep it; a trial that
    diverged before it gets the worst score seen at it; running ones without one are pending.
    Trials stopped before the epoch are left out: their score there is unknown, not bad."""
    curves = {t.number: {e: v for e, v in t.intermediate_values.items() if math.isfinite(v)}
              for t in trials}
    epoch = fidelity.model_epoch(curves, min_obs, start)
    if epoch is None:
        return None, []
    at = [curves[t.number][epoch] for t in trials if epoch in curves[t.number]]
    worst = min(at) if maximize else max(at)
    picked = []  # (trial, its value at the epoch, or None: running, pending)
    for t in trials:
        if not t.params:
            continue
        value = curves[t.number].get(epoch)
        if value is None and t.user_attrs.get(DIVERGED_ATTR):
            value = worst
        if value is not None or t.state == TrialState.RUNNING:
            picked.append((t, value))
    # Frozen trials are built for the capped set only (building 1,000 cost ~35 ms).
    return epoch, [create_trial(params=t.params, distributions=t.distributions, value=v)
                   if v is not None else
                   create_trial(params=t.params, distributions=t.distributions,
                                state=TrialState.RUNNING)
                   for t, v in _capped(picked, maximize)]


MIN_OBS_START = 8  # trials an epoch needs before the model starts (BOHB's rule, d + 1)
MODEL_MAX_TRIALS = 300


def default_min_obs(trials: list) -> int:
    """Trials an epoch needs for the model to prefer it: twice the parameters suggested so
    far (every branch of a conditional space), at least 8. With 8, TPE's good set (its best
    10%) is one, possibly lucky, trial (benchmarks/README.md)."""
    names = {name for t in trials for name in t.params}
    return max(MIN_OBS_START, 2 * len(names))


def _capped(picked: list, maximize: bool) -> list:
    """At most MODEL_MAX_TRIALS valued (trial, value) pairs, plus the pending ones: TPE's
    cost grows with its trials (0.2 s per suggestion at 1,000). Its good set is at most the
    best 25, so the best 30 are always kept and the rest is a fixed random sample."""
    valued = [p for p in picked if p[1] is not None]
    if len(valued) <= MODEL_MAX_TRIALS:
        return picked
    valued.sort(key=lambda p: p[1], reverse=maximize)
    rest = random.Random(len(valued)).sample(valued[30:], MODEL_MAX_TRIALS - 30)
    return valued[:30] + rest + [p for p in picked if p[1] is None]


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
        equal_fidelity: suggest from a TPE fitted at one epoch (see the module doc); the
            study's own `sampler` then only draws the random suggestions.
        min_obs: trials an epoch needs before the model learns from it (default: see above).
        random_fraction: share of suggestions left to `sampler` once the model is fitted.
        seed: seeds the model's TPE and the random/model choice.
    """

    def __init__(self, space_fn: Callable[[optuna.Trial], dict], metric: str, mode: str,
                 sampler: optuna.samplers.BaseSampler, storage, study_name: str,
                 points: list[dict] | None = None, equal_fidelity: bool = False,
                 min_obs: int | None = None, random_fraction: float = 0.2, seed: int = 0) -> None:
        super().__init__(metric=metric, mode=mode)
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
        self._recorded: set[str] | None = set()  # Tune trials in the record (None: re-read)
        self._queue: queue.Queue | None = None
        self._writer: threading.Thread | None = None
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

    def _write(self, trial_id: str, number: int) -> None:
        """Queue an ended trial for the run's record, once. After a restore the record is
        read again and every ended trial it lacks is queued (a driver killed between a
        trial's end and its write loses nothing; none is added twice)."""
        if self._record is None:
            return
        if self._recorded is None:
            self._recorded = {t.user_attrs.get(TUNE_TRIAL_ATTR)
                              for t in self._record.get_trials(deepcopy=False)}
            for t in self._study.get_trials(deepcopy=False):
                tid = t.user_attrs.get(TUNE_TRIAL_ATTR)
                if t.state.is_finished() and tid not in self._recorded and tid != trial_id:
                    self._enqueue(tid, t)
        if trial_id not in self._recorded:
            self._enqueue(trial_id, self._study.get_trials(deepcopy=False)[number])

    def _enqueue(self, trial_id: str, frozen) -> None:
        if self._writer is None or not self._writer.is_alive():
            self._queue = queue.Queue()
            self._writer = threading.Thread(target=self._write_loop, args=(self._queue,),
                                            name="hpsearch-study-writer", daemon=True)
            self._writer.start()
        self._recorded.add(trial_id)
        self._queue.put(copy.deepcopy(frozen))

    def _write_loop(self, q: queue.Queue) -> None:
        while True:
            frozen = q.get()
            try:
                self._record.add_trial(frozen)
            except Exception as exc:  # the record is a copy: never stop the search for it
                logger.warning("could not write trial %d to the study: %s", frozen.number, exc)
            finally:
                q.task_done()

    def flush(self) -> None:
        """Wait until every ended trial is in the run's record."""
        if self._queue is not None:
            self._queue.join()

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        # metric/mode are set once in SearchConfig and passed to both this and TuneConfig.
        return not config

    def _model_params(self) -> dict | None:
        """Params a TPE fitted at one epoch suggests, or None (too few trials, or a random
        draw)."""
        trials = self._study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return None  # --points still queued: they go first
        epoch, frozen = model_trials(trials, self._min_obs or default_min_obs(trials),
                                     self.mode == "max", start=self._min_obs or MIN_OBS_START)
        self.model_epochs.append(epoch)
        if epoch is None or self._rng.random() < self._random_fraction:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate/group/constant_liar: experimental
            model = optuna.create_study(
                direction=self._study.direction, sampler=optuna.samplers.TPESampler(
                    seed=self._seed + len(trials), n_startup_trials=0, multivariate=True,
                    group=True, constant_liar=True))
            model.add_trials(frozen)
            trial = model.ask()
            self._space_fn(trial)
        return trial.params

    def suggest(self, trial_id: str) -> dict | None:
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
        # A searcher saved by hpsearch < 0.3 worked on optuna.db itself: nothing to copy.
        state.setdefault("_record", None)
        self.__dict__.update(state)
        self._queue = self._writer = None
        self._recorded = None  # trials that ended after this snapshot may be recorded
        _LIVE.add(self)
