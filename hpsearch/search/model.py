"""What the equal-fidelity model (`StudySearcher(equal_fidelity=True)`) learns from.

A TPE fitted at one epoch: the highest that `min_obs` trials reached (BOHB's rule; by
default twice the number of parameters, 8 until an epoch has that many), on every trial's
score *at that epoch*; trials that diverged before it count as the worst, running ones as
pending (constant liar). Optuna's own TPE on the study instead puts the trials that ran
longest first: whatever early stopping promoted, on crossing curves the fast starters that
end worse."""

from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState, create_trial

from hpsearch import fidelity

__all__ = ["model_trials", "model_picks", "frozen", "ModelStudy", "default_min_obs",
           "MIN_OBS_START", "MODEL_MAX_TRIALS", "DIVERGED_ATTR"]

DIVERGED_ATTR = "diverged"  # user attr of a trial whose loss went NaN/inf


def model_picks(trials: list, min_obs: int, maximize: bool,
                start: int | None = None) -> tuple[int | None, list]:
    """What the equal-fidelity model is told: (epoch, [(trial, its value at that epoch, or
    None: pending)]), in the trials' order.

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
    picked = []
    for t in trials:
        if not t.params:
            continue
        value = curves[t.number].get(epoch)
        if value is None and t.user_attrs.get(DIVERGED_ATTR):
            value = worst
        if value is not None or t.state == TrialState.RUNNING:
            picked.append((t, value))
    return epoch, _capped(picked, maximize)


def frozen(trial, value: float | None):
    """A model trial: `trial`'s params, COMPLETE with `value`, or RUNNING (pending)."""
    if value is None:
        return create_trial(params=trial.params, distributions=trial.distributions,
                            state=TrialState.RUNNING)
    return create_trial(params=trial.params, distributions=trial.distributions, value=value)


def model_trials(trials: list, min_obs: int, maximize: bool,
                 start: int | None = None) -> tuple[int | None, list]:
    """`model_picks` as frozen trials: (epoch, the trials a fresh model study is given)."""
    epoch, picked = model_picks(trials, min_obs, maximize, start)
    return epoch, [frozen(t, v) for t, v in picked]


class ModelStudy:
    """The model's in-memory study, kept between suggestions.

    `study(epoch, picked)` holds `picked` ((trial, value or None) pairs, in the trials'
    order) as a fresh study given `frozen` of each would, to TPE: TPE reads the COMPLETE,
    PRUNED and RUNNING trials, ordered by number, and never a FAIL one. Building it anew cost
    ~30 ms a suggestion at 300 trials (Optuna's storage deep-copies each trial added); the
    kept one is only told what changed: new trials appended, pending (RUNNING) ones given
    their value, or told FAIL when they left the list (the searcher tells FAIL each trial
    it asks, too). A finished trial that left or changed its value, or another epoch, builds
    it anew."""

    def __init__(self, direction) -> None:
        self._direction = direction
        self._epoch: int | None = None
        self._model = None
        self._held: dict[int, tuple[float | None, int]] = {}  # trial -> (value, model number)

    def study(self, epoch: int, picked: list):
        held, new = self._held, {t.number: v for t, v in picked}
        last = max(held, default=-1)
        if (self._model is None or epoch != self._epoch
                or any(u is not None and (n not in new or new[n] != u)
                       for n, (u, _) in held.items())
                or any(n not in held and n < last for n in new)):
            self._model = optuna.create_study(direction=self._direction)
            self._epoch, held = epoch, {}
        model = self._model
        for n, (u, number) in list(held.items()):
            if u is None and n not in new:
                model.tell(number, state=TrialState.FAIL)  # no longer pending, not kept
                del held[n]
            elif u is None and new[n] is not None:
                model.tell(number, new[n])
                held[n] = (new[n], number)
        fresh = [(t, v) for t, v in picked if t.number not in held]
        start = len(model.get_trials(deepcopy=False))
        model.add_trials([frozen(t, v) for t, v in fresh])
        held.update({t.number: (v, start + i) for i, (t, v) in enumerate(fresh)})
        self._held = held
        return model


MIN_OBS_START = 8  # trials an epoch needs before the model starts (BOHB's rule, d + 1)
MODEL_MAX_TRIALS = 300


def default_min_obs(trials: list) -> int:
    """Trials an epoch needs for the model to prefer it: twice the parameters suggested so
    far (every branch of a conditional space), at least 8. With 8, TPE's good set (its best
    10%) is one, possibly lucky, trial (benchmarks/README.md)."""
    names = {name for t in trials for name in t.params}
    return max(MIN_OBS_START, 2 * len(names))


def _capped(picked: list, maximize: bool) -> list:
    """At most MODEL_MAX_TRIALS valued (trial, value) pairs, plus the pending ones, in the
    trials' order: TPE's cost grows with its trials (0.2 s per suggestion at 1,000). Its good
    set is at most the best 25, so the best 30 are always kept; of the rest, those whose
    fixed pseudo-random mark (`_mark`, by trial number) is below 2^-k, with the smallest k
    that keeps them within the cap. A kept trial stays kept until k grows or it leaves the
    best 30, so the searcher's model study mostly grows by appending (searcher.py)."""
    valued = [p for p in picked if p[1] is not None]
    if len(valued) <= MODEL_MAX_TRIALS:
        return picked
    best = {id(p[0]) for p in sorted(valued, key=lambda p: p[1],
                                     reverse=maximize)[:MODEL_BEST_KEPT]}
    marks = sorted(_mark(t.number) for t, _ in valued if id(t) not in best)
    room = MODEL_MAX_TRIALS - MODEL_BEST_KEPT
    limit = 1.0
    while len(marks) > room and marks[room] < limit:  # the smallest k: halve until it fits
        limit /= 2
    return [(t, v) for t, v in picked
            if v is None or id(t) in best or _mark(t.number) < limit]


MODEL_BEST_KEPT = 30


def _mark(number: int) -> float:
    """A fixed pseudo-random number in [0, 1) per trial number (a Weyl sequence: evenly
    spread over consecutive numbers)."""
    return (number * 0x9E3779B1 & 0xFFFFFFFF) / 2**32
