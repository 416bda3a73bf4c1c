"""Learning curves over epochs and wall-clock, the per-config GPU memory table (measured,
or estimated when the trials ran on CPU) and a note when trials shared the machine."""

from __future__ import annotations

import contextlib
import html as _html
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from hpsearch.analysis._common import finite
from hpsearch.analysis._html import img, save, table
from hpsearch.rundir import Run

logger = logging.getLogger(__name__)
__all__ = ["compute_curves", "compute_memory", "estimate_memory", "contention_note",
           "config_label", "plot", "section"]
# Distinct memory shapes estimated for a CPU run's table (each costs ~0.1-1 s), taken in
# the trials' rank order; the estimates are kept in the report directory for the next run
# of `analyze`.
MAX_ESTIMATES = 12
ESTIMATES_FILE = "memory_estimates.json"


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


def estimate_memory(run: Run, max_shapes: int = MAX_ESTIMATES,
                    cache: Path | None = None) -> pd.Series:
    """Estimated peak GPU memory (MiB, `hpsearch estimate`: the model and a training step
    on fake tensors, plus the data) per trial, for runs whose trials measured none (CPU
    runs). Configs come from each trial's first epoch row (searched and fixed values);
    trials of one memory shape share one estimate; at most `max_shapes` new shapes are
    estimated, best-ranked trials first, the rest NaN. `cache`: a JSON file of estimates by
    shape, read first and updated. Empty when the trainer cannot be estimated."""
    import json

    from hpsearch import trainers
    from hpsearch.rundir import atomic_write
    from hpsearch.trainers import memory

    try:
        trainer = trainers.get(run.meta.get("trainer", ""))
    except Exception:  # a user module no longer importable: no estimate, not an error
        return pd.Series(dtype=float)
    if trainer.module is None or trainer.config_cls is None or not memory.supports(
            trainer.module):
        return pd.Series(dtype=float)
    first = run.epochs.drop_duplicates("trial_id").set_index("trial_id")
    fields = [c for c in first.columns if trainer.has_field(c)]
    order = [t for t in run.trials["trial_id"] if t in first.index]
    by_shape: dict[str, float] = {}
    try:
        by_shape = dict(json.loads(cache.read_text())) if cache and cache.exists() else {}
    except (OSError, ValueError, TypeError):
        by_shape = {}
    known, out = len(by_shape), {}
    for tid, row in first.loc[order, fields].iterrows():
        values = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()
                  if not (isinstance(v, float) and np.isnan(v))}
        try:
            cfg = trainer.make_config(values)
            key = memory.shape_key(cfg)
            if key not in by_shape:
                if len(by_shape) - known >= max_shapes:
                    continue
                by_shape[key] = memory.estimate(trainer.module, cfg).total_mb
            out[tid] = by_shape[key]
        except Exception as exc:  # one config the estimate cannot build: left blank
            logger.info("no memory estimate for trial %s: %s", tid, exc)
    if cache and len(by_shape) > known:
        with contextlib.suppress(OSError):
            atomic_write(cache, json.dumps(by_shape))
    return pd.Series(out, dtype=float)


def contention_note(trials: pd.DataFrame, html: bool = False) -> str:
    """A sentence when trials ran at the same time on one machine (their wall-clock times
    include the contention and compare only among trials that shared it alike), else ""."""
    if "concurrent" not in trials:
        return ""
    c = pd.to_numeric(trials["concurrent"], errors="coerce").dropna()
    if c.empty or c.median() < 1.2:
        return ""
    text = (f"Wall-clock: trials shared the machine (on average {c.median():.1f} ran at once, "
            f"at most {c.max():.1f}), so time_total_s and epoch_time_s include contention "
            "for the CPU/GPU and differ between identical configs; time one config alone "
            "with `hpsearch train --config` (or a search with --max-concurrent 1).")
    return f"<p><b>{_html.escape(text)}</b></p>" if html else text


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
    trials = run.trials
    measured = pd.to_numeric(trials["gpu_mem_mb"], errors="coerce").notna().any()
    cpu_estimate = False
    if not measured and "gpu_mem_mb_estimate" not in trials:
        est = estimate_memory(run, cache=out / ESTIMATES_FILE)
        if len(est):
            trials = trials.assign(gpu_mem_mb_estimate=trials["trial_id"].map(est))
            cpu_estimate = True
    mem = compute_memory(trials, run.params)
    mem.to_csv(out / "memory.csv", index=False)
    note = contention_note(run.trials, html=True)
    if cpu_estimate:
        note += ("<p>The trials ran on CPU: gpu_mem_mb (measured) is empty and "
                 "gpu_mem_mb_estimate is an <b>estimate</b> of the peak each config would "
                 "hold on a GPU (its model and a training step on fake tensors, plus its data; "
                 "`hpsearch estimate`), not a measurement.</p>")
    elif not measured:
        note += "<p>GPU memory: not measured (trials ran on CPU).</p>"
    if "gpu_mem_mb_estimate" in mem and not cpu_estimate:
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
