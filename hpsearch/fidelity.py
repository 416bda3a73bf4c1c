"""Equal-fidelity bookkeeping for the search (pure Python; no Ray, no Optuna).

Two questions are asked of the learning curves seen so far:

- Which epoch should the sampler learn from? `model_epoch`: the highest epoch that at least
  `min_obs` trials reached (BOHB's rule), so the model compares trials at one budget and
  never mixes a 1-epoch score with a 27-epoch one.
- Can early stopping at epoch r be trusted? `rank_agreement`: Spearman's rank correlation
  between the scores at r and at the highest later epoch that enough of the same trials
  reached. Curves that cross (fast starters that end worse) give a low or negative value.
  `bracket_weights` turns the agreement of each rung into how often a new trial starts in
  each Hyperband bracket (Hyper-Tune's idea): brackets whose rungs rank like the final
  epoch are used; the others give way to later grace periods, down to no early stopping.
"""

from __future__ import annotations

import math
from typing import Mapping

__all__ = ["rungs", "model_epoch", "comparison_epoch", "rank_agreement", "bracket_weights",
           "spearman", "room_for_trial"]

Curves = Mapping[str, Mapping[int, float]]  # trial -> {epoch: score}, finite scores only


def rungs(grace: int, reduction: float, max_t: int) -> list[int]:
    """ASHA's milestones below max_t: grace, grace*eta, ... (as Ray Tune rounds them)."""
    out, k = [], 0
    while True:
        r = int(grace * reduction ** k)
        if r >= max_t:
            return out
        out.append(r)
        k += 1


def model_epoch(curves: Curves, min_obs: int, start: int | None = None) -> int | None:
    """The highest epoch with a score from at least `min_obs` trials (BOHB's rule); while no
    epoch has that many, the highest with at least `start` (default `min_obs`); None if
    none. In the search-quality harness this beat choosing the lowest epoch whose ranks
    agree with the last (more trials, but noisier ranks) on 4 of 5 landscapes."""
    counts: dict[int, int] = {}
    for curve in curves.values():
        for epoch in curve:
            counts[epoch] = counts.get(epoch, 0) + 1
    for need in (min_obs, min_obs if start is None else start):
        ok = [e for e, n in counts.items() if n >= need]
        if ok:
            return max(ok)
    return None


def comparison_epoch(reached: list[int]) -> tuple[int, int]:
    """(epoch, trials that reached it) for comparing trials at one budget: the highest epoch
    that at least max(3, a quarter of) the trials reached (all of them if fewer than 3).
    `reached`: each trial's highest epoch (a trial that diverged at an epoch reached it).
    The analysis (`rundir.comparison_epoch`) and the live progress line share this rule."""
    reached = sorted((e for e in reached if e > 0), reverse=True)
    if not reached:
        return 0, 0
    need = min(len(reached), max(3, math.ceil(len(reached) / 4)))
    epoch = reached[need - 1]
    return epoch, sum(1 for e in reached if e >= epoch)


def room_for_trial(budget: int, max_t: int, reached: Mapping[str, int],
                   running: list[str]) -> bool:
    """Whether a new trial can still train its `max_t` epochs within an epoch budget of which
    the trials have spent `sum(reached.values())` (each trial's highest epoch), after the
    `running` trials have trained to their end. With none running there is always room.

    Only a trial that trains every epoch can be the search's answer (an early-stopped score
    is never final), so near the budget's end the running trials finish first: a trial
    started where the budget cannot cover it, as slots free up, is cut when the budget runs
    out. At 8 trials at once, up to a fifth of the budget went to trials cut that way."""
    if not running:
        return True
    need = sum(max(max_t - reached.get(t, 0), 0) for t in running)
    return budget - sum(reached.values()) - need >= max_t


def _ranks(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rho (average ranks for ties); 0 when either side is constant."""
    rx, ry = _ranks(xs), _ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / math.sqrt(vx * vy) if vx > 0 and vy > 0 else 0.0


def rank_agreement(curves: Curves, epoch: int, min_pairs: int) -> tuple[float, int, int] | None:
    """(rho, pairs, reference epoch): how well scores at `epoch` rank trials as they rank at
    the highest later epoch that at least `min_pairs` of them reached; None when no later
    epoch has that many."""
    later: dict[int, int] = {}
    for curve in curves.values():
        if epoch in curve:
            for e in curve:
                if e > epoch:
                    later[e] = later.get(e, 0) + 1
    refs = [e for e, n in later.items() if n >= min_pairs]
    if not refs:
        return None
    ref = max(refs)
    pairs = [(c[epoch], c[ref]) for c in curves.values() if epoch in c and ref in c]
    return spearman([a for a, _ in pairs], [b for _, b in pairs]), len(pairs), ref


def bracket_weights(curves: Curves, brackets: list[list[int]], min_pairs: int,
                    floor: float = 0.02,
                    judged_from: Mapping[str, int | None] | None = None) -> list[float]:
    """Probability of starting a new trial in each bracket (each a list of its rungs, the
    last bracket usually with none).

    Prior: Hyperband's, e^(rungs - most rungs) (what Ray's ASHA uses for brackets). Each
    rung whose agreement is measured multiplies its bracket's weight by max(rho, 0)^2 (a
    bracket is as trustworthy as its least trustworthy rung); a rung with too few pairs
    leaves the prior. A bracket never drops below `floor` of the total, so agreement keeps
    being measured.

    `judged_from` (trial -> the first epoch early stopping could stop it at, None for
    never): a rung's agreement is then measured on the trials that were not selected at it
    (their bracket judges them later), a random sample; trials promoted through a rung are
    its best, and among them ranks agree less (range restriction) even when the rung ranks
    all trials well."""
    most = max(len(b) for b in brackets)
    agree: dict[int, float] = {}
    weights = []
    for bracket in brackets:
        w = math.exp(len(bracket) - most)
        for r in bracket:
            if r not in agree:
                sample = curves if judged_from is None else {
                    t: c for t, c in curves.items()
                    if judged_from.get(t) is None or judged_from[t] > r}
                found = rank_agreement(sample, r, min_pairs)
                agree[r] = 1.0 if found is None else max(found[0], 0.0)
            w *= agree[r] ** 2
        weights.append(w)
    total = sum(weights)
    if total <= 0:
        weights = [0.0] * (len(brackets) - 1) + [1.0]
        total = 1.0
    probs = [max(w / total, floor) for w in weights]
    s = sum(probs)
    return [p / s for p in probs]
