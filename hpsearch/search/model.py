"""What the equal-fidelity model (`StudySearcher(equal_fidelity=True)`) learns from.

A TPE fitted at one epoch: the highest that `min_obs` trials reached (BOHB's rule; by
default twice the number of parameters, 8 until an epoch has that many), on every trial's
score *at that epoch*; trials that diverged before it count as the worst, running ones as
pending (constant liar). Optuna's own TPE on the study instead puts the trials that ran
longest first: whatever early stopping promoted, on crossing curves the fast starters that
end worse."""

from __future__ import annotations

import math
import random

from optuna.trial import TrialState, create_trial

from hpsearch import fidelity

__all__ = ["model_trials", "default_min_obs", "MIN_OBS_START", "MODEL_MAX_TRIALS",
           "DIVERGED_ATTR"]

DIVERGED_ATTR = "diverged"  # user attr of a trial whose loss went NaN/inf


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
