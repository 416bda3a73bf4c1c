"""Sensitivity heatmaps: for a pair of hyperparameters, the median best val metric of the
trials in each cell, with trial counts and diverged/errored trials marked."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from hpsearch.analysis._common import ENDED_BAD, bin_param, finite
from hpsearch.analysis._html import escape, img, save
from hpsearch.rundir import Run

__all__ = ["compute_sensitivity", "compute_marginal", "pairs", "chosen_pairs", "sparse_reason",
           "plot", "plot_marginal", "section"]
# Pairs users always ask for first, when both are searched.
PRIORITY_PAIRS = [("beta1", "beta2"), ("lr", "batch_size")]


def pairs(params: list[str], among: list[str] | None = None) -> list[tuple[str, str]]:
    """The priority pairs whose parameters are both searched, then every other pair of
    `among` (default: all of `params`)."""
    out = [p for p in PRIORITY_PAIRS if p[0] in params and p[1] in params]
    seen = {frozenset(p) for p in out}
    out += [p for p in itertools.combinations(params if among is None else among, 2)
            if frozenset(p) not in seen]
    return out


def compute_sensitivity(trials: pd.DataFrame, x: str, y: str, value: str = "score",
                        bins: int = 4, categorical: bool = False, condition: str | None = None,
                        mode: str = "max") -> pd.DataFrame:
    """Long frame with one row per (x bin, y bin) cell.

    Args:
        trials: one row per trial with columns x, y, `value` and `status`.
        x, y: parameter names.
        value: the column summarised (median over trials in the cell, finite values only).
        bins: bins for continuous parameters.
        categorical: every value its own cell (a grid run: the grid's own values).
        condition: a third parameter (e.g. optimizer): each cell is then the median of its
            best level of it (in `mode`'s direction), so pooling over optimizers cannot
            reverse the comparison; the level is in column `at`.

    Returns:
        Columns x, y, value (median), n (trials), n_bad (diverged or errored).
    """
    df = trials[trials[x].notna() & trials[y].notna()].copy()
    df["_x"] = bin_param(x, df[x], bins, categorical)
    df["_y"] = bin_param(y, df[y], bins, categorical)
    df["_v"] = finite(df[value])
    df["_bad"] = df["status"].isin(ENDED_BAD)
    # Only trials with a score to compare (at the comparison epoch), and the failed ones.
    df = df[df["_v"].notna() | df["_bad"]]
    g = df.groupby(["_x", "_y"], observed=True)
    out = pd.DataFrame({"value": g["_v"].median(), "n": g.size(), "n_bad": g["_bad"].sum()})
    if condition and condition in df and condition not in (x, y):
        sub = df[df[condition].notna()].groupby(["_x", "_y", condition], observed=True)
        med = sub["_v"].median().dropna().reset_index()
        if not med.empty:
            best = med.loc[med.groupby(["_x", "_y"], observed=True)["_v"].idxmax()
                           if mode == "max" else
                           med.groupby(["_x", "_y"], observed=True)["_v"].idxmin()]
            best = best.set_index(["_x", "_y"])
            out["value"] = best["_v"].reindex(out.index)
            out["at"] = best[condition].reindex(out.index).astype(str)
    return out.reset_index().rename(columns={"_x": x, "_y": y})


def compute_marginal(trials: pd.DataFrame, param: str, value: str = "score",
                     bins: int = 6, categorical: bool = False) -> pd.DataFrame:
    """Median, min, max and count of `value` per bin of one parameter."""
    df = trials[trials[param].notna()].copy()
    df["_b"] = bin_param(param, df[param], bins, categorical)
    df["_v"] = finite(df[value])
    df = df[df["_v"].notna()]
    g = df.groupby("_b", observed=True)["_v"]
    out = pd.DataFrame({"median": g.median(), "min": g.min(), "max": g.max(), "n": g.size()})
    return out.reset_index().rename(columns={"_b": param})


def plot(cells: pd.DataFrame, x: str, y: str, ax=None, mode: str = "max", label: str = ""):
    """Seaborn heatmap of `compute_sensitivity` output; cells read 'median / n=count', and
    '✕k' counts diverged or errored trials."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ax = ax or plt.subplots(figsize=(5.5, 4.2))[1]
    grid = cells.pivot(index=y, columns=x, values="value")
    n = cells.pivot(index=y, columns=x, values="n").reindex_like(grid)
    bad = cells.pivot(index=y, columns=x, values="n_bad").reindex_like(grid)
    at = (cells.pivot(index=y, columns=x, values="at").reindex_like(grid)
          if "at" in cells else None)
    annot = np.empty(grid.shape, dtype=object)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            v, c, b = grid.iat[i, j], n.iat[i, j], bad.iat[i, j]
            text = "" if pd.isna(c) else (f"{v:.3g}" if pd.notna(v) else "—") + f"\nn={int(c)}"
            annot[i, j] = text + (f" ✕{int(b)}" if pd.notna(b) and b > 0 else "")
            if at is not None and pd.notna(at.iat[i, j]) and text:
                annot[i, j] += f"\n{at.iat[i, j]}"
    cmap = "viridis" if mode == "max" else "viridis_r"
    sns.heatmap(grid.astype(float), annot=annot, fmt="", cmap=cmap, ax=ax,
                cbar_kws={"label": label or "median best val metric"}, linewidths=0.5)
    ax.set_title(f"{y} × {x}")
    return ax


def plot_marginal(marg: pd.DataFrame, param: str, ax=None, label: str = ""):
    """Median (points) and range (bars) of the metric per bin of one parameter."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(4.5, 3.2))[1]
    xs = np.arange(len(marg))
    med = marg["median"].to_numpy(dtype=float)
    lo, hi = marg["min"].to_numpy(dtype=float), marg["max"].to_numpy(dtype=float)
    ax.errorbar(xs, med, yerr=[med - lo, hi - med], fmt="o", capsize=3)
    ax.set_xticks(xs, [str(v) for v in marg[param]], rotation=30, ha="right")
    ax.set_xlabel(param)
    ax.set_ylabel(label or "best val metric")
    ax.set_title(f"marginal: {param}")
    return ax


MAX_PAIRS = 8
TOP_PARAMS = 4
# Compared at its best level in every heatmap it is not part of: optimizers differ in their
# best lr and depth, and pooling over them reverses conclusions (GPT vs LSTM pooled over
# optimizers, LSTM wins with Adam at every depth).
CONDITION = "optimizer"


def effect_sizes(trials: pd.DataFrame, params: list[str], value: str = "score",
                 categorical: bool = False) -> dict[str, float]:
    """A cheap importance for choosing heatmaps: the spread (max - min) of the per-bin
    medians of `value` for each parameter (bins with at least 2 trials)."""
    out = {}
    for p in params:
        m = compute_marginal(trials, p, value, categorical=categorical)
        m = m[m["n"] >= 2]
        out[p] = float(m["median"].max() - m["median"].min()) if len(m) >= 2 else 0.0
    return out


def chosen_pairs(trials: pd.DataFrame, params: list[str], value: str = "score",
                 categorical: bool = False) -> list[tuple[str, str]]:
    """The seed pairs (beta1 x beta2, lr x batch_size) when searched, then the pairs of the
    TOP_PARAMS parameters with the largest effect, at most MAX_PAIRS."""
    eff = effect_sizes(trials, params, value, categorical)
    top = sorted(params, key=lambda p: -eff[p])[:TOP_PARAMS]
    return pairs(params, among=top)[:MAX_PAIRS]


def sparse_reason(cells: pd.DataFrame) -> str | None:
    """Why a heatmap would mislead, or None: most cells with one trial or none scored."""
    scored = cells[cells["value"].notna()]
    if scored.empty:
        return "no cell has a trial that reached the comparison epoch"
    if (scored["n"] >= 2).mean() < 0.5:
        return (f"{int(scored['n'].sum())} trials over {len(scored)} cells: most cells "
                "hold one trial")
    return None


def section(run: Run, out: Path) -> str:
    """The report section: figures written to `out`, returned as HTML."""
    label = f"median {run.score_label}"
    grid = bool(run.meta.get("grid"))
    parts, skipped = [], []
    for x, y in chosen_pairs(run.trials, run.params, categorical=grid):
        cond = CONDITION if CONDITION in run.params and CONDITION not in (x, y) else None
        cells = compute_sensitivity(run.trials, x, y, value="score", categorical=grid,
                                    condition=cond, mode=run.mode)
        if cells.empty:
            continue
        reason = sparse_reason(cells)
        if reason:
            skipped.append(f"{y} × {x}: {reason}")
            continue
        ax = plot(cells, x, y, mode=run.mode, label=label)
        parts.append(img(save(ax, out / f"sensitivity_{y}_x_{x}.png")))
    marg = []
    for p in run.params:
        m = compute_marginal(run.trials, p, value="score", categorical=grid)
        if not m.empty:
            ax = plot_marginal(m, p, label=run.score_label)
            marg.append(img(save(ax, out / f"marginal_{p}.png")))
    c = run.compare
    note = (f"<p>Cell: median over trials of {escape(run.score_label)}: every trial is "
            f"compared at epoch {c.get('epoch')} ({escape(str(c.get('rule')))}; "
            f"{c.get('trials_reached')} of {c.get('trials')} trials reached it; trials "
            "stopped before it are not in the cells). n = trials; ✕k = diverged or "
            f"errored trials. Where {CONDITION} is searched, each cell of a pair without it "
            f"is its best {CONDITION}'s median (named in the cell). Pairs shown: beta1 × "
            "beta2 and lr × batch_size when searched, then pairs of the "
            f"{TOP_PARAMS} parameters whose bins differ most.</p>")
    if skipped:
        note += ("<p>Not drawn (too sparse to read):</p><ul>"
                 + "".join(f"<li>{escape(t)}</li>" for t in skipped) + "</ul>")
    return note + '<div class="grid">' + "".join(parts + marg) + "</div>"
