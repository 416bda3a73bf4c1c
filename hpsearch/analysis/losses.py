"""Final and minimum train/val loss per grid cell, the tables the seed reports were made of
(e.g. beta1 x beta2, one table per batch size and lr)."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from hpsearch.analysis._common import bin_param, finite
from hpsearch.analysis._html import table
from hpsearch.rundir import Run

__all__ = ["compute_cells", "pivot_layout", "section"]

LOSSES = ("final_train_loss", "min_train_loss", "final_val_loss", "min_val_loss")
MAX_FACETS = 12


def compute_cells(run: Run) -> pd.DataFrame:
    """One row per config (replicates such as seeds pooled): its parameter values, how many
    trials ran it, the final and minimum train and val loss (mean over replicates), the
    final score, how many diverged or failed, the epochs reached and the parameter count."""
    t = run.trials
    params = [p for p in run.params if p in t]
    if t.empty:
        return pd.DataFrame(columns=[*params, "trials", *LOSSES])
    df = t.assign(**{c: finite(t[c]) for c in (*LOSSES, "final_score") if c in t},
                  _bad=t["status"].isin(("diverged", "error")))
    keys = params or ["trial_id"]
    agg = {c: (c, "mean") for c in (*LOSSES, "final_score") if c in df}
    agg.update(trials=("trial_id", "count"), diverged=("_bad", "sum"), epochs=("epochs", "max"))
    if "n_params" in df:
        agg["n_params"] = ("n_params", "first")
    out = df.groupby(keys, dropna=False, sort=True).agg(**agg).reset_index()
    out["diverged"] = out["diverged"].astype(int)
    return out


def pivot_layout(cells: pd.DataFrame, params: list[str]) -> tuple[str, str, list[str]] | None:
    """(row parameter, column parameter, facet parameters): the two parameters with the
    most levels span each table, in the run's parameter order; the rest split tables."""
    varied = [p for p in params if p in cells and cells[p].nunique(dropna=True) > 1]
    if len(varied) < 2:
        return None
    two = sorted(varied, key=lambda p: -cells[p].nunique(dropna=True))[:2]
    rows, cols = sorted(two, key=varied.index)
    return rows, cols, [p for p in varied if p not in (rows, cols)]


def _cell(final, low, bad: int) -> str:
    if bad and pd.isna(final):
        return f"diverged (min {low:.3g})" if pd.notna(low) else "diverged"
    if pd.isna(final):
        return "-"
    text = f"{final:.3g} / {low:.3g}" if pd.notna(low) else f"{final:.3g}"
    return text + (" (diverged)" if bad else "")


def _pivot(g: pd.DataFrame, rows: str, cols: str, split: str) -> pd.DataFrame:
    r = bin_param(rows, g[rows], categorical=True)
    c = bin_param(cols, g[cols], categorical=True)
    text = [_cell(f, m, b) for f, m, b in zip(g[f"final_{split}_loss"], g[f"min_{split}_loss"],
                                              g["diverged"])]
    frame = pd.DataFrame({rows: r, cols: c, "v": text})
    out = frame.pivot_table(index=rows, columns=cols, values="v", aggfunc="first",
                            observed=True)
    return out.reset_index().rename_axis(columns=None)


def section(run: Run, out: Path) -> str:
    """The report section (for grid runs: tables per facet; other runs: where to look)."""
    cells = compute_cells(run)
    cells.to_csv(out / "loss_cells.csv", index=False)
    if not run.meta.get("grid"):
        return ("<p>Final and minimum train and val loss per trial are in the trials table "
                "(trials.csv: final_train_loss, min_train_loss, final_val_loss, min_val_loss) "
                "and per config in loss_cells.csv; a grid run (--grid) shows them here as "
                "tables.</p>")
    layout = pivot_layout(cells, run.params)
    intro = ("<p>Each cell: final / minimum loss over the trial's epochs (mean over "
             "replicates), every trial at its last epoch (a grid runs every config to the "
             "end unless a scheduler stopped it). All cells with every column in "
             "loss_cells.csv.</p>")
    if layout is None:
        return intro + table(cells, len(cells))
    rows, cols, facets = layout
    groups = list(cells.groupby(facets, sort=True, dropna=False)) if facets else [((), cells)]
    parts = [intro]
    for key, g in groups[:MAX_FACETS]:
        key = key if isinstance(key, tuple) else (key,)
        title = ", ".join(f"{f} = {v}" for f, v in zip(facets, key)) or "all cells"
        parts.append(f"<h3>{html.escape(title)}</h3><div class='grid'>")
        for split in ("val", "train"):
            parts.append(f"<figure><figcaption>{split} loss, final / min: {html.escape(rows)}"
                         f" (rows) x {html.escape(cols)} (columns)</figcaption>"
                         f"{table(_pivot(g, rows, cols, split), 50)}</figure>")
        parts.append("</div>")
    if len(groups) > MAX_FACETS:
        parts.append(f"<p>{len(groups) - MAX_FACETS} more tables in loss_cells.csv.</p>")
    return "".join(parts)
