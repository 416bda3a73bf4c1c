"""A Tune callback that prints one live progress line: trials done/running/stopped, best so far."""

from __future__ import annotations

import math
import sys
import time

from ray.tune import Callback


class ProgressLine(Callback):
    """Writes `[12s] 5/16 done (3 completed, 1 stopped early, 1 diverged) | 2 running | best ...`.

    Args:
        total: requested number of trials.
        metric, mode: what "best" means.
        stream: "stdout" or "stderr" (a name, so the callback pickles into Tune's state).
        every_s: at most one line per this many seconds, except when a trial ends.
    """

    def __init__(self, total: int, metric: str, mode: str, stream: str = "stdout",
                 every_s: float = 5.0):
        self.total, self.metric, self.mode, self.stream = total, metric, mode, stream
        self.every_s = every_s
        self.start = time.monotonic()
        self._last = 0.0
        self.ended: dict[str, str] = {}  # trial id -> completed | stopped_early | diverged | error
        self.best: tuple[float, str, dict] | None = None
        self.last_status: dict[str, str] = {}

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best[0] if self.mode == "max" else value < self.best[0]

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.last_status[trial.trial_id] = result.get("status", "running")
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value) and self._better(value):
            self.best = (value, trial.trial_id, dict(trial.config))
        if time.monotonic() - self._last > self.every_s:
            self._emit(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        status = self.last_status.get(trial.trial_id, "running")
        self.ended[trial.trial_id] = "stopped_early" if status == "running" else status
        self._emit(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended[trial.trial_id] = "error"
        self._emit(trials)

    def _emit(self, trials) -> None:
        self._last = time.monotonic()
        counts: dict[str, int] = {}
        for status in self.ended.values():
            counts[status] = counts.get(status, 0) + 1
        running = sum(1 for t in trials if t.status == "RUNNING" and t.trial_id not in self.ended)
        parts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(counts.items()))
        best = (f"best {self.metric}={self.best[0]:.4g} ({self.best[1]})" if self.best
                else "best -")
        self._write(f"[{self._last - self.start:5.0f}s] {len(self.ended)}/{self.total} done"
                   f"{f' ({parts})' if parts else ''} | {running} running | {best}")

    def _write(self, line: str) -> None:
        out = getattr(sys, self.stream)
        out.write(line + "\n")
        out.flush()
