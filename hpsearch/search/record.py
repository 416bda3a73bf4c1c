"""The run's record of a search: each ended trial written once to optuna.db, from a writer
thread, so the driver never waits on sqlite per trial (StudySearcher's half that writes)."""

from __future__ import annotations

import copy
import logging
import queue
import threading
import weakref

import optuna

logger = logging.getLogger(__name__)
__all__ = ["RecordWriter", "flush_all", "TUNE_TRIAL_ATTR", "LOST_ATTR"]
_LIVE: "weakref.WeakSet[RecordWriter]" = weakref.WeakSet()
# The writer thread lives and dies with its process; the model's study is rebuilt on need.
_UNPICKLED = ("_queue", "_writer", "_model_cache")
TUNE_TRIAL_ATTR, LOST_ATTR = "tune_trial_id", "lost"  # user attrs: the Tune trial; Tune lost it


def flush_all() -> None:
    """Wait until every searcher of this process has written its ended trials."""
    for searcher in list(_LIVE):
        searcher.flush()


class RecordWriter:
    """Writes a searcher's ended trials to its record. The state lives on the searcher
    (`_record`: the optuna.db study or None, `_recorded`: Tune ids written, None to re-read;
    `_study`: the in-memory study), so its snapshots keep their format."""

    _record = _recorded = _queue = _writer = None
    _record_url: str | None = None  # the record's storage URL (absent in older snapshots)

    def _reopen_record(self) -> None:
        """After a restore, the record as its file holds it now: the snapshot's study caches
        the trials it had written (Optuna's cached storage), which a record rebuilt since
        (`ledger.mend_record`, a damaged optuna.db; or a deleted one) no longer has."""
        if self._record is not None and self._record_url:
            self._record = optuna.create_study(
                storage=self._record_url, study_name=self._record.study_name,
                load_if_exists=True, direction=self._record.direction)

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
                if t.state.is_finished() and tid not in self._recorded and tid not in (
                        trial_id, None):
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

    def ended_in_record(self) -> dict:
        """Tune id -> frozen trial, for the trials the record has ended (not those Tune lost,
        which ran again)."""
        if self._record is None:
            return {}
        return {t.user_attrs.get(TUNE_TRIAL_ATTR): t
                for t in self._record.get_trials(deepcopy=False)
                if t.state.is_finished() and not t.user_attrs.get(LOST_ATTR)}
