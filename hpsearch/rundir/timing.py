"""When trials ran: how many shared a machine at once (their wall-clock includes it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["concurrency"]


def concurrency(epochs: pd.DataFrame) -> pd.Series:
    """Per trial, how many trials ran at once on its node on average over its lifetime (1.0:
    it ran alone), from each epoch's end time (`wall_end`, unix s) and duration; NaN when
    the run did not record them (runs before 0.3, user-written epochs).

    One sweep per node: the running count is a step function of time, its integral A(t) is
    piecewise linear, and a trial's mean is (A(end) - A(start)) / (end - start).
    """
    if "wall_end" not in epochs or epochs.empty:
        return pd.Series(dtype=float)
    end = pd.to_numeric(epochs["wall_end"], errors="coerce")
    dur = pd.to_numeric(epochs["epoch_time_s"], errors="coerce").fillna(0.0)
    node = epochs["node_ip"] if "node_ip" in epochs else pd.Series("", index=epochs.index)
    spans = pd.DataFrame({"trial_id": epochs["trial_id"], "node": node.fillna(""),
                          "start": end - dur, "end": end}).dropna(subset=["end"])
    spans = spans.groupby("trial_id").agg(node=("node", "first"), start=("start", "min"),
                                          end=("end", "max"))
    out = pd.Series(np.nan, index=spans.index, dtype=float)
    for _, s in spans.groupby("node"):
        times = np.concatenate([s["start"].to_numpy(), s["end"].to_numpy()])
        steps = np.concatenate([np.ones(len(s)), -np.ones(len(s))])
        order = np.argsort(times, kind="stable")
        times, running = times[order], np.cumsum(steps[order])
        area = np.concatenate([[0.0], np.cumsum(running[:-1] * np.diff(times))])
        a_start = np.interp(s["start"].to_numpy(), times, area)
        a_end = np.interp(s["end"].to_numpy(), times, area)
        length = (s["end"] - s["start"]).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(length > 0, (a_end - a_start) / length, 1.0)
        out.loc[s.index] = np.maximum(mean, 1.0).round(2)
    return out
