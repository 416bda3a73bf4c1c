"""Learning curves over epochs and wall-clock, and the per-config GPU memory table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hpsearch.analysis._common import finite
from hpsearch.analysis._html import img, save, table
from hpsearch.rundir import Run

__all__ = ["compute_curves", "compute_memory", "config_label", "plot", "section"]


def config_label(row: pd.Series, params: list[str]) -> str:
    """Short text for a config: 'optimizer=adam lr=0.003 depth=2' (missing values skipped)."""
    parts = []
    for p in params:
        v = row.get(p)
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        parts.append(f"{p}={v:.3g}" if isinstance(v, float) else f"{p}={v}")
    return " ".join(parts)


def compute_curves(epochs: pd.DataFrame, trials: pd.DataFrame, params: list[str],
                   top: int = 8) -> pd.DataFrame:
    """Tidy curves of the `top` trials (trials frame is already sorted best first).

    Returns:
        trial_id, label, epoch, time_total_s, split (train|val), metric.
    """
    keep = trials.head(top)
    # A legend that fits: the rank and at most 3 parameters that differ among these trials.
    varying = [p for p in params if p in keep and keep[p].nunique(dropna=True) > 1][:3]
    labels = {r["trial_id"]: f"#{k} {config_label(r, varying)}".strip()
              for k, (_, r) in enumerate(keep.iterrows(), start=1)}
    df = epochs[epochs["trial_id"].isin(labels)].copy()
    df["label"] = df["trial_id"].map(labels)
    long = df.melt(id_vars=["trial_id", "label", "epoch", "time_total_s"],
                   value_vars=["train_metric", "val_metric"], var_name="split",
                   value_name="metric")
    long["split"] = long["split"].str.replace("_metric", "")
    long["metric"] = finite(long["metric"])
    return long.sort_values(["trial_id", "split", "epoch"], ignore_index=True)


def compute_memory(trials: pd.DataFrame, params: list[str]) -> pd.DataFrame:
    """Per-trial GPU memory (MiB) with its config: the GPU share the trial was given and
    what sized it (share_from: the estimate, or a peak measured by an earlier trial of the
    same shape), the estimate, the measured peak (`torch.cuda.max_memory_allocated`),
    actual/estimate, and what NVML saw on the whole device. NaN actuals: ran on CPU.

    Returns:
        trial_id, params..., [gpu_share, share_from, gpu_mem_mb_estimate,] gpu_mem_mb,
        [actual_over_estimate,] gpu_mem_device_mb, status; largest actual (else estimate) first.
    """
    cols = ["trial_id", *[p for p in params if p in trials]]
    cols += [c for c in ("gpu_share", "share_from", "gpu_mem_mb_estimate") if c in trials]
    cols += [c for c in ("gpu_mem_mb", "gpu_mem_device_mb", "status") if c in trials]
    out = trials[cols].copy()
    if "gpu_mem_mb_estimate" in out:
        est = pd.to_numeric(out["gpu_mem_mb_estimate"], errors="coerce")
        actual = pd.to_numeric(out["gpu_mem_mb"], errors="coerce")
        out.insert(out.columns.get_loc("gpu_mem_mb") + 1, "actual_over_estimate",
                   (actual / est).round(3))
        key = actual.fillna(est)
    else:
        key = pd.to_numeric(out["gpu_mem_mb"], errors="coerce")
    order = key.sort_values(ascending=False, na_position="last").index
    return out.loc[order].reset_index(drop=True)


def plot(curves: pd.DataFrame, x: str = "epoch", ax=None, metric_name: str = "metric"):
    """Validation (solid) and training (dashed) metric per config, over `x`."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ax = ax or plt.subplots(figsize=(9.5, 4.2))[1]
    if curves.empty:
        ax.set_axis_off()
        return ax
    sns.lineplot(curves, x=x, y="metric", hue="label", style="split", ax=ax,
                 style_order=["val", "train"], estimator=None, units="trial_id")
    ax.set_xlabel("epoch" if x == "epoch" else "wall-clock (s)")
    ax.set_ylabel(metric_name)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.figure.tight_layout()
    ax.set_title(f"learning curves over {'epochs' if x == 'epoch' else 'wall-clock'}")
    return ax


def section(run: Run, out: Path) -> str:
    """The report section: figures written to `out`, returned as HTML."""
    cur = compute_curves(run.epochs, run.trials, run.params)
    figs = [save(plot(cur, "epoch", metric_name=run.metric_name), out / "curves_epoch.png"),
            save(plot(cur, "time_total_s", metric_name=run.metric_name),
                  out / "curves_time.png")]
    mem = compute_memory(run.trials, run.params)
    mem.to_csv(out / "memory.csv", index=False)
    note = ("" if mem["gpu_mem_mb"].notna().any()
            else "<p>GPU memory: not measured (trials ran on CPU).</p>")
    if "gpu_mem_mb_estimate" in mem:
        ratio = mem["actual_over_estimate"].dropna()
        note += ("<p>gpu_mem_mb_estimate: peak predicted before the trial ran (its model and "
                 "a training step on fake tensors, plus its data); gpu_share: the part "
                 "of a device the trial got, sized from the estimate or, once a trial of "
                 "the same shape had measured its peak, from that (share_from); "
                 "gpu_mem_mb: measured peak "
                 "(torch.cuda.max_memory_allocated); gpu_mem_device_mb: the whole device "
                 "(NVML).")
        if len(ratio):
            note += (f" Measured/estimated over {len(ratio)} trials: median "
                     f"{ratio.median():.2f}, max {ratio.max():.2f}.")
        note += "</p>"
    return "".join(img(f) for f in figs) + "<h3>GPU memory per config (MB)</h3>" + note + \
        table(mem, 30)
