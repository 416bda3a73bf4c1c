"""Summary table by architecture, layers and optimizer, the best per architecture marked;
rendered as Markdown, HTML or CSV."""

from __future__ import annotations

import html

import pandas as pd

from hpsearch.analysis._common import ENDED_BAD, bin_param, finite

__all__ = ["compute_summary", "render", "compute_fair", "fair_lines"]
ARCH_PARAMS = ("model", "norm")  # what distinguishes architectures within one trainer
LAYER_PARAMS = ("layers", "depth")


def compute_summary(trials: pd.DataFrame, trainer: str, mode: str = "max",
                    value: str = "score") -> pd.DataFrame:
    """One row per (architecture, layers, optimizer), compared on `value` (each trial's
    score at the run's comparison epoch: trials that did not reach it count in `trials`
    but not in best/median).

    Returns:
        architecture, layers, optimizer, trials, completed, diverged, best, median, best_trial,
        n_params (trainable parameters: one number, or "low-high" when widths differ within
        the row), is_best (the best row of its architecture). Sorted by architecture,
        layers, optimizer.
    """
    df = trials.copy()
    arch_cols = [c for c in ARCH_PARAMS if c in df and df[c].notna().any()]
    df["architecture"] = df[arch_cols].astype(str).agg("-".join, axis=1).map(
        lambda s: f"{trainer}-{s}") if arch_cols else trainer
    layer_col = next((c for c in LAYER_PARAMS if c in df and df[c].notna().any()), None)
    df["layers"] = df[layer_col] if layer_col else pd.NA
    df["optimizer"] = df["optimizer"] if "optimizer" in df else pd.NA
    df["_v"] = finite(df[value])
    keys = ["architecture", "layers", "optimizer"]
    rows = []
    for key, g in df.groupby(keys, dropna=False, sort=True):
        v = g["_v"]
        idx = None if v.isna().all() else (v.idxmax() if mode == "max" else v.idxmin())
        rows.append({**dict(zip(keys, key)), "trials": len(g), "compared": int(v.notna().sum()),
                     "completed": int((g["status"] == "completed").sum()),
                     "diverged": int((g["status"] == "diverged").sum()),
                     "best": v.max() if mode == "max" else v.min(), "median": v.median(),
                     "errored": int((g["status"] == "error").sum()),
                     "best_trial": g.loc[idx, "trial_id"] if idx is not None else None,
                     "n_params": _count_range(g["n_params"]) if "n_params" in g else None})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    if out["n_params"].isna().all():  # a trainer that reports no parameter count
        out = out.drop(columns="n_params")
    best = out.groupby("architecture")["best"].transform("max" if mode == "max" else "min")
    out["is_best"] = out["best"].eq(best) & out["best"].notna()
    return out


def _count_range(s: pd.Series) -> str | None:
    v = pd.to_numeric(s, errors="coerce").dropna()
    if v.empty:
        return None
    lo, hi = int(v.min()), int(v.max())
    return f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"


def _cell(v) -> str:
    if isinstance(v, float):
        return "" if pd.isna(v) else f"{v:.4g}"
    return "" if v is None or v is pd.NA else str(v)


def render(summary: pd.DataFrame, fmt: str = "md") -> str:
    """Markdown (best rows in **bold**), HTML (best rows in <b>) or CSV."""
    cols = [c for c in summary.columns if c != "is_best"]
    if fmt == "csv":
        return summary.to_csv(index=False)
    if fmt == "md":
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in summary.itertuples(index=False):
            cells = [_cell(getattr(r, c)) for c in cols]
            if r.is_best:
                cells = [f"**{c}**" if c else c for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
    if fmt == "html":
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = []
        for r in summary.itertuples(index=False):
            cells = [html.escape(_cell(getattr(r, c))) for c in cols]
            if r.is_best:
                cells = [f"<b>{c}</b>" for c in cells]
            cls = ' class="best"' if r.is_best else ""
            body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        return f'<table class="summary"><tr>{head}</tr>{"".join(body)}</table>\n'
    raise ValueError(f"format must be md, html or csv, got {fmt!r}")


FACTORS = ("optimizer", "norm", "model", "layers", "depth", "activation")


def compute_fair(trials: pd.DataFrame, factor: str, mode: str = "max",
                 value: str = "score", tuned: str = "lr") -> pd.DataFrame:
    """Each level of `factor` (e.g. each optimizer) at its own best `tuned` value (lr bin):
    the median `value` of the trials in that bin, their range and count, and the level's
    diverged/errored trials. Levels compared at one epoch (`value` is the run's score)."""
    cols = ["level", "best", "low", "high", "n", "at", "bad", "trials"]
    if factor not in trials or trials[factor].nunique(dropna=True) < 2:
        return pd.DataFrame(columns=cols)
    rows = []
    for level, g in trials.groupby(factor, dropna=True, sort=True):
        v = finite(g[value])
        bins = (bin_param(tuned, g[tuned], 4) if tuned in g and g[tuned].notna().any()
                else pd.Series(["all"] * len(g), index=g.index))
        best = None
        for b, idx in g.groupby(bins, observed=True).groups.items():
            cell = v.loc[idx].dropna()
            if cell.empty:
                continue
            med = cell.median()
            if best is None or (med > best[0] if mode == "max" else med < best[0]):
                best = (med, cell.min(), cell.max(), len(cell), str(b))
        bad = int(g["status"].isin(ENDED_BAD).sum())
        rows.append({"level": level, **dict(zip(cols[1:6], best or (None,) * 5)), "bad": bad,
                     "trials": len(g)})
    out = pd.DataFrame(rows, columns=cols)
    key = out["best"].astype(float).fillna(-float("inf") if mode == "max" else float("inf"))
    return out.assign(_k=key).sort_values("_k", ascending=(mode == "min")).drop(columns="_k")


def fair_lines(trials: pd.DataFrame, mode: str = "max") -> list[str]:
    """One sentence per factor: "optimizer: adamw 0.70 (0.68-0.71, n=5, lr 0.001-0.0032)
    vs sgd 0.24 (...)"."""
    lines = []
    for factor in FACTORS:
        fair = compute_fair(trials, factor, mode)
        if fair.empty:
            continue
        parts = []
        for r in fair.itertuples(index=False):
            if r.best is None or pd.isna(r.best):
                parts.append(f"{r.level} - (none compared, {r.trials} trials)")
                continue
            at = f", lr {r.at}" if r.at != "all" else ""
            bad = f", {r.bad} diverged/failed" if r.bad else ""
            parts.append(f"{r.level} {r.best:.4g} ({r.low:.4g}-{r.high:.4g}, "
                         f"n={int(r.n)}{at}{bad})")
        lines.append(f"{factor}: " + " vs ".join(parts))
    return lines
