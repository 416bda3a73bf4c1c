"""OptunaSearch that tells Optuna the truth about how a trial ended.

Ray's OptunaSearch tells every trial with a final value as COMPLETE, including those ASHA
stopped after one epoch; TPE then treats a 1-epoch score as a finished result. Here an
early-stopped or diverged trial is told as PRUNED (Optuna keeps its intermediate values) and
an errored one as FAIL."""

from __future__ import annotations

import logging

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

logger = logging.getLogger(__name__)


class PruneAwareOptunaSearch(OptunaSearch):
    """OptunaSearch mapping the trainer's `status` to Optuna trial states.

    `status` of the last result: completed -> COMPLETE; error or a Tune error -> FAIL;
    running (stopped by the scheduler) or diverged -> PRUNED.
    """

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        current = self._ot_study._storage.get_trial(ot_trial._trial_id).state  # noqa: SLF001
        if current.is_finished():
            # Told before a driver crash, but the restored searcher snapshot predates it;
            # Optuna would refuse both a new intermediate value and a second tell.
            self._completed_trials.add(trial_id)
            return
        if result:
            # The result that made the scheduler stop a trial never reaches on_trial_result.
            self.on_trial_result(trial_id, result)
        status = (result or {}).get("status")
        value = (result or {}).get(self.metric)
        if error or status == "error" or result is None:
            state, values = TrialState.FAIL, None
        elif status == "completed" and value is not None:
            state, values = TrialState.COMPLETE, value
        else:
            state, values = TrialState.PRUNED, None
        try:
            self._ot_study.tell(ot_trial, values, state=state)
        except Exception as exc:  # e.g. a NaN value: Optuna refuses and the trial fails
            logger.warning("optuna tell failed for %s: %s", trial_id, exc)
            self._ot_study.tell(ot_trial, None, state=TrialState.FAIL)
        self._completed_trials.add(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Report the metric as an intermediate value at step = epoch (not Tune's iteration
        count, which restarts differently after a crash)."""
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        value, step = result.get(self.metric), result.get("epoch")
        if result.get("status") == "error" or value is None or step is None or value != value:
            return  # NaN or an error row: Optuna would reject it
        ot_trial = self._ot_trials[trial_id]
        if step not in ot_trial.storage.get_trial(ot_trial._trial_id).intermediate_values:
            ot_trial.report(value, step)
