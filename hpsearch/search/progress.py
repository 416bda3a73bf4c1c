"""Live progress of a search (a Tune callback): trials running / done / stopped / failed, each
running trial's epoch, the best so far at an equal budget, elapsed time and an estimate of
the time left. On a terminal it is a tqdm bar over the epoch budget, redrawn every half
second; otherwise one plain line every few seconds and whenever a trial ends.

"Best so far" is `best@E metric=X (trial)`: the best score *at epoch E*, the epoch the
analysis would compare the trials at now (`fidelity.comparison_epoch`), so a fast starter's
epoch-1 peak or an early-stopped trial's score is never shown as the search's best, and the
last line names the trial the run's summary does."""

from __future__ import annotations

import math
import sys
import time

from ray.tune import Callback

from hpsearch import fidelity

__all__ = ["Progress", "ProgressLine"]


class Progress(Callback):
    """Progress over `total` trials of at most `max_epochs` epochs each.

    Args:
        total: planned trials.
        metric, mode: what "best" means (compared at one epoch: see the module doc).
        stream: "stdout" or "stderr" (a name, so the callback pickles into Tune's state).
        max_epochs: each trial's epoch budget (the bar's total is total x max_epochs; early
            stopping ends trials sooner, so the time left is an upper estimate).
        every_s: plain-line mode: at most one line per this many seconds, except when a trial
            ends.
    """

    def __init__(self, total: int, metric: str, mode: str, stream: str = "stdout",
                 max_epochs: int = 1, every_s: float = 5.0):
        self.total, self.metric, self.mode, self.stream = total, metric, mode, stream
        self.max_epochs, self.every_s = max(1, max_epochs), every_s
        self.start = time.monotonic()
        self._last = 0.0
        self.ended: dict[str, str] = {}  # trial id -> completed | stopped_early | diverged | error
        self.epoch: dict[str, int] = {}  # trial id -> highest epoch reported
        self.scores: dict[str, dict[int, float]] = {}  # trial id -> {epoch: finite score}
        self.last_status: dict[str, str] = {}
        self._bar = None

    def __getstate__(self):  # the bar holds a stream: it is not part of Tune's saved state
        return {**self.__dict__, "_bar": None}

    def __setstate__(self, state):  # runs saved before these fields existed
        # `best` (any epoch's best value) came before `scores`; `leader()` replaces it.
        state = {k: v for k, v in state.items() if k != "best"}
        self.__dict__.update({"max_epochs": 1, "epoch": {}, "_bar": None, "scores": {},
                              **state})
        # A restored search (`hpsearch resume`, another process): the monotonic clock it
        # was saved with means nothing here; time counts from the restore.
        self.start, self._last = time.monotonic(), 0.0

    def get_state(self) -> dict:
        """Saved by Tune with its experiment state; `hpsearch resume` gets it back through
        `set_state` (the instance Tune pickled at the start knows no results), so the best so
        far still counts the trials that reported before the interruption."""
        return {"epoch": dict(self.epoch), "scores": {t: dict(v) for t, v in self.scores.items()}}

    def set_state(self, state: dict) -> None:
        for tid, epoch in (state or {}).get("epoch", {}).items():
            self.epoch[tid] = max(epoch, self.epoch.get(tid, 0))
        for tid, values in (state or {}).get("scores", {}).items():
            self.scores[tid] = {**values, **self.scores.get(tid, {})}

    def _out(self):
        return getattr(sys, self.stream)

    def _tty(self) -> bool:
        out = self._out()
        return bool(getattr(out, "isatty", lambda: False)())

    def leader(self) -> tuple[int, float, str] | None:
        """(epoch, score, trial id): the best score at the epoch the trials are compared at
        now (the highest that max(3, 1/4 of) the trials reached), or None."""
        epoch, _ = fidelity.comparison_epoch(list(self.epoch.values()))
        at = [(v[epoch], tid) for tid, v in self.scores.items() if epoch in v]
        if not at:
            return None
        value, tid = (max if self.mode == "max" else min)(at, key=lambda p: p[0])
        return epoch, value, tid

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.last_status[trial.trial_id] = result.get("status", "running")
        epoch, value = result.get("epoch"), result.get(self.metric)
        if isinstance(epoch, int):
            self.epoch[trial.trial_id] = max(epoch, self.epoch.get(trial.trial_id, 0))
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.scores.setdefault(trial.trial_id, {})[epoch] = float(value)
        self._maybe_emit(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        status = self.last_status.get(trial.trial_id, "running")
        self.ended[trial.trial_id] = "stopped_early" if status == "running" else status
        self._emit(trials, force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended[trial.trial_id] = "error"
        self._emit(trials, force=True)

    def on_step_end(self, iteration, trials, **info):
        self._maybe_emit(trials)

    def on_experiment_end(self, trials, **info):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _maybe_emit(self, trials) -> None:
        every = 0.5 if self._tty() else self.every_s
        if time.monotonic() - self._last >= every:
            self._emit(trials)

    def _adopt_ended(self, trials) -> None:
        """Trials that ended before a restore get no callback in the restored search: count
        them by Tune's status and their last result."""
        for t in trials:
            if t.trial_id in self.ended or t.status not in ("TERMINATED", "ERROR"):
                continue
            last = (getattr(t, "last_result", None) or {}).get("status", "running")
            self.ended[t.trial_id] = ("error" if t.status == "ERROR" else
                                      "stopped_early" if last == "running" else last)

    def summary(self, trials) -> str:
        """`5/16 done (3 completed, 1 stopped early, 1 error) | 2 running: a@3 b@1 |
        best@8 val_metric=0.86 (c)`"""
        self._adopt_ended(trials)
        counts: dict[str, int] = {}
        for status in self.ended.values():
            counts[status] = counts.get(status, 0) + 1
        running = [t.trial_id for t in trials if t.status == "RUNNING"
                   and t.trial_id not in self.ended]
        parts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(counts.items()))
        at = " ".join(f"{tid}@{self.epoch.get(tid, 0)}" for tid in running[:4])
        lead = self.leader()
        best = f"best@{lead[0]} {self.metric}={lead[1]:.4g} ({lead[2]})" if lead else "best -"
        return (f"{len(self.ended)}/{self.total} done{f' ({parts})' if parts else ''} | "
                f"{len(running)} running{f': {at}' if at else ''} | {best}")

    def _emit(self, trials, force: bool = False) -> None:
        self._last = time.monotonic()
        if self._tty():
            self._draw(trials)
            return
        elapsed = self._last - self.start
        self._out().write(f"[{elapsed:5.0f}s] {self.summary(trials)}\n")
        self._out().flush()

    def _draw(self, trials) -> None:
        from tqdm import tqdm

        budget = self.total * self.max_epochs
        done = sum(self.max_epochs if tid in self.ended else e for tid, e in self.epoch.items())
        if self._bar is None:
            self._bar = tqdm(total=budget, unit="epoch", file=self._out(), dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} epochs "
                                        "[{elapsed}<{remaining}] {postfix}")
        self._bar.n = min(done, budget)
        self._bar.set_postfix_str(self.summary(trials), refresh=False)
        self._bar.refresh()


ProgressLine = Progress  # the name runs saved by hpsearch 0.1 pickled
