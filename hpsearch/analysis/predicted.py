"""`hpsearch analyze --predicted`: each trial's score at the last epoch *predicted* by a
random forest fitted on every reported (config, epoch) -> score, with the 10%-90% spread of
its trees as the interval. A model's guess for trials stopped early, labelled as such;
never used to rank the measured tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hpsearch.analysis._common import finite, is_categorical, metric_epochs, use_log
from hpsearch.analysis._html import escape, table
from hpsearch.rundir import Run

__all__ = ["predict_final", "section"]


def _features(frame: pd.DataFrame, params: list[str], ref: pd.DataFrame) -> pd.DataFrame:
    cols = {}
    for p in params:
        if p not in ref:
            continue
        if is_categorical(ref[p]):
            for level in sorted(ref[p].dropna().unique(), key=str):
                cols[f"{p}={level}"] = (frame[p] == level).astype(float)
        else:
            v = finite(frame[p])
            cols[p] = (np.log10(v.where(v > 0)) if use_log(p, ref[p]) else v).fillna(-1.0)
    return pd.DataFrame(cols, index=frame.index)


def predict_final(run: Run, epoch: int | None = None, seed: int = 0) -> pd.DataFrame:
    """trial_id, status, epochs, measured (score at `epoch` if the trial got there),
    predicted, low, high: the forest's estimate of the run's metric at `epoch` (default: the
    highest epoch any trial reached) for every trial's config."""
    from sklearn.ensemble import RandomForestRegressor

    ep = metric_epochs(run)
    cols = ["trial_id", "status", "epochs", "measured", "predicted", "low", "high"]
    if len(ep) < 10 or not run.params:
        return pd.DataFrame(columns=cols)
    epoch = epoch or int(ep["_e"].max())
    cfg = run.trials.set_index("trial_id")
    rows = ep.join(cfg[[p for p in run.params if p in cfg]], on="trial_id", rsuffix="_cfg")
    x = _features(rows, run.params, run.trials).assign(_epoch=rows["_e"])
    forest = RandomForestRegressor(n_estimators=100, min_samples_leaf=2, random_state=seed,
                                   n_jobs=1).fit(x.to_numpy(), rows["_v"].to_numpy())
    xt = _features(run.trials, run.params, run.trials).assign(_epoch=float(epoch))
    per_tree = np.stack([t.predict(xt.to_numpy()) for t in forest.estimators_])
    measured = ep[ep["_e"] == epoch].groupby("trial_id")["_v"].last()
    out = pd.DataFrame({"trial_id": run.trials["trial_id"], "status": run.trials["status"],
                        "epochs": run.trials["epochs"],
                        "measured": run.trials["trial_id"].map(measured),
                        "predicted": per_tree.mean(axis=0),
                        "low": np.quantile(per_tree, 0.1, axis=0),
                        "high": np.quantile(per_tree, 0.9, axis=0)})
    return out.sort_values("predicted", ascending=(run.mode == "min"), ignore_index=True)


def section(run: Run, out: Path) -> str:
    pred = predict_final(run)
    pred.to_csv(out / "predicted.csv", index=False)
    if pred.empty:
        return "<p>Too few reported epochs to fit a prediction.</p>"
    top = int(pd.to_numeric(run.epochs["epoch"], errors="coerce").max())
    note = (f"<p><b>Predicted, not measured:</b> {escape(run.metric)} at epoch {top} for each "
            "trial's config, from a random forest over (config, epoch) fitted on every "
            "reported epoch; low/high = the 10%-90% spread of its trees. 'measured' is the "
            "real score where the trial got there. Trials stopped early get a model's "
            "guess; the measured tables above never use these values.</p>")
    return note + table(pred, 25)
