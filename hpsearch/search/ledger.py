"""After a crash: making Ray Tune's trial list, the searcher and the run's record
(optuna.db) agree.

Ray Tune writes its state (trial list, search-algorithm counter, searcher snapshot) to a
staging folder and copies it to the run directory in the background, file by file, so a
driver killed mid-copy can leave them out of step. The searcher therefore counts the trials
itself and, given Tune's trial list after a restore, adopts what it never saw and runs
again what Tune lost (`StudySearcher.sync`); `ended_outside_tune` counts the trials that
ended but are missing from Tune's list, for deciding whether a run is finished."""

from __future__ import annotations

import logging
import os

import optuna
from optuna.trial import TrialState
from ray import tune
from ray.tune.search import ConcurrencyLimiter

from hpsearch.rundir import RunDir, layout, tune_state
from hpsearch.search.grid import GridSearcher
from hpsearch.search.searcher import LOST_ATTR, TUNE_TRIAL_ATTR, StudySearcher

logger = logging.getLogger(__name__)
__all__ = ["TrialLedger", "SlotLimiter", "fail_orphans", "running_numbers", "mend_record",
           "ended_outside_tune"]


class SlotLimiter(ConcurrencyLimiter):
    """Tune's ConcurrencyLimiter (what `max_concurrent_trials` would make; Tune's pending-trial
    count finds it by type) that can also take in trials it never suggested. After a restore
    its live set is as old as the searcher's snapshot; a trial Tune's newer list has running
    that the set lacks (it started after the snapshot) would neither hold a slot nor be told
    to the searcher when it ended: the plain limiter drops completions of trials it does not
    hold, so the trial never reached optuna.db. `adopt` counts such trials against the limit
    and passes their end on."""

    def __init__(self, searcher, max_concurrent: int) -> None:
        super().__init__(searcher, max_concurrent=max_concurrent)
        self.adopted: set[str] = set()

    def adopt(self, trial_ids) -> None:
        self.adopted |= set(trial_ids) - self.live_trials

    def suggest(self, trial_id: str):
        if len(self.live_trials) + len(self.adopted) >= self.max_concurrent:
            return None
        return super().suggest(trial_id)

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        if trial_id in self.adopted:
            self.adopted.discard(trial_id)
            return self.searcher.on_trial_complete(trial_id, result=result, error=error)
        return super().on_trial_complete(trial_id, result=result, error=error)


class TrialLedger(tune.Callback):
    """Gives the searcher Tune's trial list at the start of each step: it counts the trials
    (Tune runs `num_samples=-1`) and, after a restore, agrees with the list (see
    `StudySearcher.sync`). Folders of trials Tune lost are set aside (RunDir)."""

    _limiter: ConcurrencyLimiter | None = None  # (runs begun before it had one)

    def __init__(self, searcher: StudySearcher | GridSearcher, run_dir: str,
                 local: bool, limiter: ConcurrencyLimiter | None = None) -> None:
        self._searcher, self._run_dir, self._local = searcher, run_dir, local
        self._limiter = limiter

    def on_step_begin(self, iteration, trials, **info) -> None:
        restored = self._searcher.reconciling
        rd = RunDir(self._run_dir)
        for trial_id in self._searcher.sync(trials):
            moved = tune_state.set_aside_trial(rd, trial_id) if self._local else []
            logger.warning("trial %s was lost from Ray Tune's saved state (driver killed while "
                           "saving it); its config runs again%s", trial_id,
                           f"; its folder moved to {layout.LOST_TRIALS}/" if moved else "")
        if restored and self._local:
            self._set_aside_unknown(rd, trials)
        if restored and self._limiter is not None:
            self._release(trials)
            if isinstance(self._limiter, SlotLimiter):  # (runs begun before it had one)
                self._limiter.adopt(t.trial_id for t in trials if not t.is_finished())

    def _release(self, trials: list) -> None:
        """The concurrency limiter's saved live set is as old as the search state it was
        saved with: a trial it holds that Tune's (newer) list has ended, or that Tune lost,
        never ends again in Tune, and its slot was never given back (a resumed run with 2
        slots hung once both were held so). Each is ended in the limiter as Tune would have;
        the searcher ignores those it already knows ended. (The grid's searcher forgets
        the trials Tune lost, so the limiter's own live set is read too: a lost trial it held
        kept its slot, and a resumed grid run with one slot waited for it for ever.)"""
        by_id = {t.trial_id: t for t in trials}
        held = set(self._limiter.live_trials)
        for tid in sorted(self._searcher.known_ids() | set(by_id) | held):
            t = by_id.get(tid)
            if t is None or t.is_finished():
                self._limiter.on_trial_complete(
                    tid, result=t.last_result if t else None,
                    error=t is not None and t.status == t.ERROR)

    def _set_aside_unknown(self, rd: RunDir, trials: list) -> None:
        """A folder of a trial that neither Tune's saved state nor the searcher's knows
        (both saved before it started, and it never ended in optuna.db): not counted, its
        config never told; out of the tables with the lost ones."""
        known = {t.trial_id for t in trials} | self._searcher.known_ids()
        for folder in rd.trial_dirs():  # with a params.json: Tune may be making others
            if not any(f"_{tid}_" in folder.name for tid in known if tid):
                tune_state.set_aside_folder(rd, folder)
                logger.warning("%s: a trial no saved state knows (driver killed while "
                               "saving it); moved to %s/", folder.name, layout.LOST_TRIALS)


def _record(rd: RunDir, study_name: str | None) -> optuna.Study | None:
    """The run's record (optuna.db), or None when the run has none."""
    if not study_name or not rd.file(layout.STUDY_DB).exists():
        return None
    try:
        return optuna.load_study(study_name=study_name, storage=rd.study_url)
    except KeyError:
        return None


def ended_outside_tune(rd: RunDir, study_name: str | None, tune_ids: set[str]) -> int:
    """Trials in optuna.db that ended but are not in Tune's trial list (its saved state was
    older than the searcher's when the driver was killed); the lost ones (run again) aside."""
    study = _record(rd, study_name)
    return 0 if study is None else sum(
        1 for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and not t.user_attrs.get(LOST_ATTR)
        and t.user_attrs.get(TUNE_TRIAL_ATTR) not in tune_ids)


def fail_orphans(rd: RunDir, study_name: str, numbers: set[int]) -> None:
    """Optuna trials left RUNNING by the killed driver that the restored searcher never
    picked up again are marked FAIL, so the study has no phantom running trials."""
    study = optuna.load_study(study_name=study_name, storage=rd.study_url)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number in numbers:
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            logger.warning("optuna trial %d was orphaned by the crash; marked FAIL", t.number)


def running_numbers(rd: RunDir, study_name: str) -> set[int] | None:
    study = _record(rd, study_name)
    return None if study is None else {
        t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}


def mend_record(rd: RunDir, study_name: str | None, mode: str | None) -> str | None:
    """A damaged optuna.db (not a database, cut short) is set aside and an empty study of the
    same name put in its place: the resumed searcher re-reads the record and writes into it
    every ended trial its saved state knows, so `resume` finishes the run instead of failing
    on sqlite. Returns the name the damaged file was given, or None when it was readable."""
    db = rd.file(layout.STUDY_DB)
    if not study_name or not db.exists():
        return None
    try:
        optuna.load_study(study_name=study_name, storage=rd.study_url)
        return None
    except KeyError:  # readable, without this study: left as it is
        return None
    except Exception:  # noqa: BLE001 (SQLAlchemy's errors for a damaged file)
        aside = db.with_name(f"{layout.STUDY_DB}.damaged")
        os.replace(db, aside)
        logger.warning("%s is damaged (set aside as %s); the study is written again from "
                       "the searcher's saved state", db, aside.name)
    optuna.create_study(storage=rd.study_url, study_name=study_name,
                        direction="minimize" if mode == "min" else "maximize")
    return aside.name
