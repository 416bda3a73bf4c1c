"""Overfitting-gap report: per trial final and max gap (val - train loss), the epoch where
val loss turns up while train loss keeps falling, and the gap per depth/norm/optimizer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hpsearch.analysis._common import finite

__all__ = ["compute_overfitting", "gap_by", "plot"]
GROUP_PARAMS = ("depth", "layers", "norm", "optimizer", "model")


def _turn_epoch(g: pd.DataFrame, tol: float) -> float:
    """First epoch after the val-loss minimum, if val loss then rose by more than `tol`
    (relative) while train loss fell. NaN when the trial did not overfit."""
    val, train = finite(g["val_loss"]).to_numpy(), finite(g["train_loss"]).to_numpy()
    if len(val) < 3 or np.isnan(val).all():
        return np.nan
    best = int(np.nanargmin(val))
    last = len(val) - 1
    if best == last:
        return np.nan
    rose = val[last] > val[best] * (1 + tol)
    fell = train[last] < train[best]
    return float(g["epoch"].iloc[best + 1]) if rose and fell else np.nan


def compute_overfitting(epochs: pd.DataFrame, params: list[str] | None = None,
                        gap_threshold: float = 0.15, tol: float = 0.02) -> pd.DataFrame:
    """One row per trial.

    Args:
        epochs: per-epoch frame (trial_id, epoch, train_loss, val_loss, gap, status, params).
        params: parameter columns to carry along.
        gap_threshold: a final gap above this also flags the trial.
        tol: relative rise of val loss that counts as turning up.

    Returns:
        trial_id, params, final_gap, max_gap, best_val_epoch, turn_epoch, flagged, reason.
    """
    rows = []
    for tid, g in epochs.sort_values("epoch").groupby("trial_id", sort=False):
        gap = finite(g["gap"])
        val = finite(g["val_loss"])
        turn = _turn_epoch(g, tol)
        final_gap = gap.iloc[-1]
        reasons = []
        if not np.isnan(turn):
            reasons.append(f"val loss rises from epoch {int(turn)} while train loss falls")
        if pd.notna(final_gap) and final_gap > gap_threshold:
            reasons.append(f"final gap {final_gap:.3f} > {gap_threshold}")
        rows.append({"trial_id": tid, **{p: g[p].iloc[-1] for p in (params or []) if p in g},
                     "status": g["status"].iloc[-1], "final_gap": final_gap,
                     "max_gap": gap.max(),
                     "best_val_epoch": (float(g["epoch"].iloc[int(np.nanargmin(val))])
                                        if val.notna().any() else np.nan),
                     "turn_epoch": turn, "flagged": bool(reasons), "reason": "; ".join(reasons)})
    return pd.DataFrame(rows)


def gap_by(result: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """Median final gap and flagged share per level of each grouping parameter searched."""
    out = []
    for p in [p for p in GROUP_PARAMS if p in params and p in result]:
        g = result.dropna(subset=[p]).groupby(p)
        out.append(pd.DataFrame({"param": p, "value": list(g.groups), "median_final_gap":
                                 g["final_gap"].median().to_numpy(),
                                 "flagged_share": g["flagged"].mean().to_numpy(),
                                 "n": g.size().to_numpy()}))
    cols = ["param", "value", "median_final_gap", "flagged_share", "n"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


def plot(epochs: pd.DataFrame, result: pd.DataFrame, ax=None, top: int = 8):
    """Gap over epochs for the flagged trials (or the widest gaps when none is flagged)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ax = ax or plt.subplots(figsize=(6, 3.8))[1]
    chosen = result[result["flagged"]]
    if chosen.empty:
        chosen = result
    chosen = chosen.sort_values("final_gap", ascending=False).head(top)["trial_id"]
    df = epochs[epochs["trial_id"].isin(chosen)].copy()
    df["gap"] = finite(df["gap"])
    if df.empty:
        ax.set_axis_off()
        return ax
    sns.lineplot(df, x="epoch", y="gap", hue="trial_id", marker="o", ax=ax)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_title("generalisation gap (val - train loss)")
    return ax
