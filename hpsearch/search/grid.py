"""A hand grid (`--grid`) as a Tune searcher that counts its points itself.

Ray Tune's own grid generator keeps how many points it handed out in its saved search state,
a file Tune copies to the run directory apart from the trial list; a driver killed between
the two copies left a restored run believing a point had run that never did, and every
`hpsearch resume` then ended "interrupted". Here each point is handed out once, and after a
restore the searcher agrees with Tune's trial list (`sync`, called by `ledger.TrialLedger`):
a point whose trial Tune lost runs again; a Tune trial the snapshot never handed out takes
its point."""

from __future__ import annotations

import itertools
import pickle

from ray.tune.search import Searcher

__all__ = ["GridSearcher", "grid_points"]


def grid_points(grid: dict, fixed: dict) -> list[dict]:
    """Every combination of the grid's values (the last key varying fastest), each with the
    fixed settings."""
    keys = list(grid)
    return [{**fixed, **dict(zip(keys, values))}
            for values in itertools.product(*(list(grid[k]) for k in keys))]


class GridSearcher(Searcher):
    """Hands out `points` (full trial configs) in order, each to one Tune trial."""

    def __init__(self, points: list[dict], metric: str, mode: str) -> None:
        super().__init__(metric=metric, mode=mode)
        self._points = [dict(p) for p in points]
        self._todo = list(range(len(points)))  # point indices not yet handed out
        self._given: dict[str, int] = {}  # Tune trial id -> its point
        self._reconcile = True

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return not config  # the points are whole configs

    def suggest(self, trial_id: str) -> dict | str:
        if not self._todo:
            return Searcher.FINISHED
        index = self._todo.pop(0)
        self._given[trial_id] = index
        return dict(self._points[index])

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        pass  # a grid learns nothing

    @property
    def reconciling(self) -> bool:
        """Whether the next `sync` is the first since a restore."""
        return self._reconcile

    def known_ids(self) -> set[str]:
        return set(self._given)

    def sync(self, tune_trials: list) -> list[str]:
        """After a restore, agree with Tune's trial list; returns the Tune ids of the trials
        Tune lost (their points run again, first)."""
        if not self._reconcile:
            return []
        self._reconcile = False
        for t in tune_trials:
            if t.trial_id not in self._given:  # the snapshot is older than Tune's list
                config = dict(t.config)
                match = next((i for i in self._todo if all(
                    config.get(k) == v for k, v in self._points[i].items())), None)
                if match is not None:
                    self._todo.remove(match)
                    self._given[t.trial_id] = match
        ids = {t.trial_id for t in tune_trials}
        lost = [tid for tid in self._given if tid not in ids]
        for tid in reversed(lost):
            self._todo.insert(0, self._given.pop(tid))
        return lost

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        # The run directory is trusted input (README): Tune's own restore unpickles it too.
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
        self._reconcile = True
