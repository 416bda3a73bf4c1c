"""Helpers shared by analysis modules: parameter kinds, binning, finite values, the search
metric's learning curves."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Parameters searched on a log scale in every built-in space.
LOG_PARAMS = {"lr", "weight_decay"}
ENDED_BAD = {"diverged", "error"}


def is_categorical(s: pd.Series) -> bool:
    """Strings and bools are categories; so are integer values with at most 8 levels (batch
    size, depth) and floats with at most 3 (a hand grid). Other numbers get binned."""
    values = s.dropna()
    if values.empty:
        return True
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return True
    integral = bool((values == values.round()).all())
    return values.nunique() <= (8 if integral else 3)


def use_log(name: str, s: pd.Series) -> bool:
    """Log bins for lr/weight decay, and for any positive range spanning over 20x."""
    v = pd.to_numeric(s, errors="coerce").dropna()
    if v.empty or (v <= 0).any():
        return False
    return name in LOG_PARAMS or v.max() / v.min() > 20


def use_one_minus(s: pd.Series) -> bool:
    """Bins on log(1 - value) for values sampled that way (Adam's beta2: 0.9, 0.99, 0.999 a
    bin apart; `spaces.scales`): all in (0, 1), 1 - value spanning over 20x, and at least a
    quarter of them in the upper half of that log scale (a uniform sample has ~3% there)."""
    v = pd.to_numeric(s, errors="coerce").dropna()
    if v.empty or (v <= 0).any() or (v >= 1).any():
        return False
    gap = np.log(1 - v)
    if gap.max() - gap.min() <= np.log(20):
        return False
    return bool((gap < (gap.max() + gap.min()) / 2).mean() >= 0.25)


def bin_param(name: str, s: pd.Series, bins: int = 4, categorical: bool = False) -> pd.Series:
    """Categorical parameters (or every parameter, with `categorical`: a grid's values are
    shown as given) as ordered labels; continuous ones cut into `bins` intervals
    (log-spaced for log parameters, on log(1 - value) for values sampled so: beta2),
    labelled by their edges."""
    if categorical or is_categorical(s):
        levels = sorted(s.dropna().unique(), key=lambda x: (str(type(x)), x))
        names = {v: _label(v) for v in levels}
        cat = pd.Categorical(s.map(lambda x: names.get(x, np.nan) if pd.notna(x) else np.nan),
                             categories=list(dict.fromkeys(names.values())), ordered=True)
        return pd.Series(cat, index=s.index)
    v = pd.to_numeric(s, errors="coerce")
    lo, hi = v.min(), v.max()
    if lo == hi:
        return pd.Series(pd.Categorical([f"{lo:.3g}"] * len(v)), index=s.index)
    if use_one_minus(v):
        edges = 1 - np.geomspace(1 - lo, 1 - hi, bins + 1)
        edges[0], edges[-1] = lo, hi  # exact bounds: 1 - (1 - x) may round past them
        for digits in range(3, 10):  # enough digits to tell 0.9994 from 0.9999 (not "1")
            shown = [f"{e:.{digits}g}" for e in edges]
            if len(set(shown)) == len(shown) and all(float(x) < 1 for x in shown):
                break
        labels = [f"{shown[i]}-{shown[i + 1]}" for i in range(bins)]
        return pd.cut(v, edges, labels=labels, include_lowest=True)
    edges = (np.geomspace(lo, hi, bins + 1) if use_log(name, v)
             else np.linspace(lo, hi, bins + 1))
    labels = [f"{edges[i]:.2g}-{edges[i + 1]:.2g}" for i in range(bins)]
    return pd.cut(v, edges, labels=labels, include_lowest=True)


def _label(v) -> str:
    if isinstance(v, (float, np.floating)) and not float(v).is_integer():
        return f"{v:.3g}"
    if isinstance(v, (float, np.floating)):
        return str(int(v))
    return str(v)


def finite(s: pd.Series) -> pd.Series:
    """Numeric with inf turned to NaN."""
    return pd.to_numeric(s, errors="coerce").replace([np.inf, -np.inf], np.nan)


def metric_epochs(run) -> pd.DataFrame:
    """A run's per-epoch rows that have a finite score of the search's metric (val_metric
    if the run lacks it), with columns `_v` (that score) and `_e` (the epoch, numeric)."""
    metric = run.metric if run.metric in run.epochs else "val_metric"
    ep = run.epochs.assign(_v=finite(run.epochs[metric]),
                           _e=pd.to_numeric(run.epochs["epoch"], errors="coerce"))
    return ep[ep["_v"].notna() & (ep["_e"] > 0)]


def metric_curves(run) -> dict[str, dict[int, float]]:
    """trial_id -> {epoch: score of the search's metric} (finite scores only)."""
    return {t: dict(zip(g["_e"].astype(int), g["_v"].astype(float)))
            for t, g in metric_epochs(run).groupby("trial_id")}
