"""Early stopping that checks itself, and the epoch budget.

`AdaptiveHyperband`: Hyperband brackets with ASHA's promotion rule, each new trial's bracket
drawn by how well each bracket's rungs have ranked trials so far (`fidelity.bracket_weights`).
When early epochs rank configs as the last epoch does, most trials go to the aggressive
bracket (judged first at epoch `grace`); when curves cross, trials move to brackets with
later first rungs, down to the last one, which never stops a trial early. Ray Tune's
`ASHAScheduler` (`--scheduler asha`) keeps separate rungs per bracket and draws brackets
from a fixed prior; neither can be changed from outside it, hence this scheduler on Tune's
public `FIFOScheduler`/`TrialScheduler` interface."""

from __future__ import annotations

import math
import random

from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.stopper import Stopper

from hpsearch import fidelity
from hpsearch.rundir import RunDir
from hpsearch.rundir.results import epoch_rows

__all__ = ["AdaptiveHyperband", "EpochBudget", "promoted"]


class EpochBudget(Stopper):
    """`--budget-epochs N`: end the search once N epochs have been trained in all (trials
    still running are stopped there), so searches compare at an equal budget. A trial's
    epochs are its highest reported epoch: the result Tune adds when a trainer returns
    repeats the last epoch (counting results, each finished trial cost one epoch more)."""

    REACHED: dict[str, int] = {}  # run dir -> epochs spent, once the budget is used up

    def __init__(self, run_dir: str, epochs: int) -> None:
        self.run_dir, self.epochs, self.spent = str(run_dir), epochs, 0
        self._reached: dict[str, int] = {}  # trial -> its highest epoch
        self._reread = False  # a new search: nothing trained yet

    def __setstate__(self, state: dict) -> None:
        state.setdefault("_reached", {})  # saved when the stopper counted results
        self.__dict__.update(state, _reread=True)  # restored (`hpsearch resume`): _trained

    def _trained(self) -> dict[str, int]:
        """Each trial's highest epoch. Tune saves this stopper with its experiment state,
        now and then: epochs a trial ended with after the last save were missing from a
        resumed search's count, so a restored stopper first reads the run's trial folders
        (where Tune keeps them locally)."""
        reached = self._reached
        if self._reread:
            self._reread = False
            for trial_dir in RunDir(self.run_dir).trial_dirs():
                rows = epoch_rows(trial_dir)
                if rows:
                    tid = str(rows[-1].get("trial_id"))
                    reached[tid] = max(reached.get(tid, 0), *(r["epoch"] for r in rows))
            self.spent = max(self.spent, sum(reached.values()))
        return reached

    def __call__(self, trial_id: str, result: dict) -> bool:
        epoch, reached = result.get("epoch"), self._trained()
        before = reached.get(trial_id, 0)
        if isinstance(epoch, int) and epoch > before:
            self.spent += epoch - before
            reached[trial_id] = epoch
        return False

    def stop_all(self) -> bool:
        self._trained()
        if self.spent >= self.epochs:
            self.REACHED[self.run_dir] = self.spent
            return True
        return False


def promoted(value: float, at: list[float], eta: float) -> bool:
    """ASHA's rule at a rung, by rank: `value` (higher is better) goes on if at most
    (n - 1) / eta of the n scores `at` that epoch (its own among them) are strictly better.
    This is `value >= ` the 1 - 1/eta quantile of `at` (linear between order statistics, as
    Ray's ASHA takes it), without the quantile's float arithmetic: (1 - 1/3) * 18 is
    12.000000000000002 but (1 - 1/3) * 12 is 8.0, so the trial at that order statistic was
    kept at some rung sizes and stopped at others by rounding, and a search minimising a loss
    decided otherwise than one maximising the same ranking."""
    better = sum(1 for x in at if x > value)
    return better * eta <= len(at) - 1


class AdaptiveHyperband(FIFOScheduler):
    """Hyperband brackets (first rungs at grace, grace*eta, ..., and one without early
    stopping) that share their rungs, with each new trial's bracket drawn by measured
    agreement (`fidelity.bracket_weights`).

    At each of its bracket's rungs a trial continues if its score is in the top 1/eta of the
    scores *every* trial reported at that epoch (asynchronous successive halving, ASHA's
    rule); sharing the rungs across brackets means a trial that passed an epoch unjudged in a
    later bracket still counts there, and the first trials of each bracket are not waved
    through for lack of company as they are in per-bracket ASHA.

    Args:
        metric, mode: what trials optimise (also given to TuneConfig).
        max_t: the epoch budget of one trial.
        grace_period, reduction_factor: the first bracket's rungs.
        seed: seeds the bracket draw.
        min_pairs: trials that must have reached both a rung and a later epoch before that
            rung's agreement is trusted over the prior.
        adaptive: draw brackets by measured agreement (False: Hyperband's fixed weights).
        brackets: "hyperband" (all of them), or one alone for comparisons in the same loop:
            "asha" (the first: ASHA on shared rungs) or "none" (no early stopping).
    """

    def __init__(self, metric: str, mode: str, max_t: int, grace_period: int = 1,
                 reduction_factor: float = 3.0, seed: int = 0, min_pairs: int = 8,
                 adaptive: bool = True, brackets: str = "hyperband") -> None:
        super().__init__()
        self._adaptive = adaptive
        self._metric, self._sign, self._max_t = metric, 1.0 if mode == "max" else -1.0, max_t
        self._eta, self._min_pairs = reduction_factor, min_pairs
        graces = []
        g = grace_period
        while g < max_t:
            graces.append(g)
            g = int(math.ceil(g * reduction_factor))
        self._rungs = [fidelity.rungs(g, reduction_factor, max_t) for g in graces] + [[]]
        if brackets not in ("hyperband", "asha", "none"):
            raise ValueError(f"brackets must be hyperband, asha or none, got {brackets!r}")
        if brackets != "hyperband":
            self._rungs = self._rungs[:1] if brackets == "asha" else [[]]
        self._rng = random.Random(seed)
        self._bracket: dict[str, int] = {}
        self._curves: dict[str, dict[int, float]] = {}  # higher is better
        self._judged_from: dict[str, int | None] = {}  # trial -> its bracket's first rung

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # set once in the constructor, as for the searcher

    def weights(self) -> list[float]:
        return fidelity.bracket_weights(self._curves if self._adaptive else {}, self._rungs,
                                        self._min_pairs, judged_from=self._judged_from)

    def on_trial_add(self, tune_controller, trial) -> None:
        w = self.weights()
        self._assign(trial.trial_id, self._rng.choices(range(len(w)), weights=w)[0])

    def _assign(self, trial_id: str, bracket: int) -> None:
        self._bracket[trial_id] = bracket
        rungs = self._rungs[bracket]
        self._judged_from[trial_id] = rungs[0] if rungs else None

    def decide(self, trial_id: str, result: dict) -> str:
        """CONTINUE or STOP for one reported epoch (Tune-free, for tests)."""
        value, epoch = result.get(self._metric), result.get("epoch")
        if not isinstance(epoch, int):
            return TrialScheduler.CONTINUE
        if epoch >= self._max_t:
            return TrialScheduler.STOP
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            return TrialScheduler.CONTINUE  # the trainable marks and ends a diverged trial
        score = self._sign * float(value)  # higher is better, whatever the mode
        self._curves.setdefault(trial_id, {})[epoch] = score
        if trial_id not in self._bracket:
            self._assign(trial_id, 0)
        if epoch not in self._rungs[self._bracket[trial_id]]:
            return TrialScheduler.CONTINUE
        at = [c[epoch] for c in self._curves.values() if epoch in c]
        return TrialScheduler.CONTINUE if promoted(score, at, self._eta) else TrialScheduler.STOP

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self.decide(trial.trial_id, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._bracket.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._bracket.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        w = self.weights()
        return "AdaptiveHyperband bracket weights: " + ", ".join(
            f"grace {r[0] if r else self._max_t}: {p:.2f}" for r, p in zip(self._rungs, w))
