"""A run's tables: `epochs` (one row per trial per epoch, DESIGN.md schema) read from Ray
Tune's trial folders, and `trials` (one row per trial), as pandas frames."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hpsearch import fidelity
from hpsearch.errors import UserError
from hpsearch.rundir import tune_state
from hpsearch.rundir.layout import PACKING, RunDir
from hpsearch.rundir.results import SCHEMA, trial_rows
from hpsearch.rundir.timing import concurrency

__all__ = ["SCHEMA", "Run", "load_run", "summarize_trials", "comparison_epoch"]

REPLICATE_KEYS = {"seed"}


@dataclass
class Run:
    """A loaded experiment: its meta (hpsearch.json) and its tables.

    Attributes:
        path: the run directory.
        meta: the search settings the run was started with.
        epochs: one row per trial per epoch.
        trials: one row per trial, best first: by `score`, the search's metric at the
            comparison epoch `compare["epoch"]`, in the search's direction; trials that did
            not reach that epoch after them (they are not compared).
        params: the searched hyperparameters (columns of both frames).
        compare: the comparison epoch, the rule that chose it, and how many trials reached it.
    """

    path: Path
    meta: dict
    epochs: pd.DataFrame
    trials: pd.DataFrame
    params: list[str] = field(default_factory=list)
    compare: dict = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return self.meta.get("mode", "max")

    @property
    def metric_name(self) -> str:
        return self.meta.get("metric_name", "val_metric")

    @property
    def metric(self) -> str:
        """The reported key the search optimised (`--metric`)."""
        return self.meta.get("metric", "val_metric")

    @property
    def score_label(self) -> str:
        """e.g. "val_metric (accuracy) at epoch 8"."""
        name = (f"{self.metric} ({self.metric_name})" if self.metric == "val_metric"
                else self.metric)
        return f"{name} at epoch {self.compare.get('epoch')}"

    @property
    def rundir(self) -> RunDir:
        return RunDir(self.path)

    def trials_dataframe(self) -> pd.DataFrame:
        """One row per trial (Optuna's `Study.trials_dataframe` habit)."""
        return self.trials.copy()

    def best_config(self) -> dict:
        """The hyperparameters (searched ones, as plain values) of the completed trial with
        the best final score: completed trials ran every epoch, so they compare at an equal
        budget."""
        done = self.trials[self.trials["status"] == "completed"]
        if done.empty:
            raise UserError(f"{self.path}: no completed trial")
        key = done["final_score"].fillna(-math.inf if self.mode == "max" else math.inf)
        row = done.loc[key.idxmax() if self.mode == "max" else key.idxmin()]
        return {p: _plain(row[p]) for p in self.params if p in row and _known(row[p])}


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def _known(v) -> bool:
    return not (isinstance(v, float) and math.isnan(v))


def comparison_epoch(epochs: pd.DataFrame, metric: str = "val_metric") -> tuple[int, int]:
    """(epoch, trials that reached it): the highest epoch that at least max(3, a quarter of
    the trials) reached (all trials if fewer than 3; a trial that diverged at an epoch
    reached it). Scores are compared there, never a 1-epoch score with an 8-epoch one."""
    if epochs.empty or "epoch" not in epochs:
        return 0, 0
    ep = pd.to_numeric(epochs["epoch"], errors="coerce")
    has = epochs.assign(_e=ep)[ep.notna() & (ep > 0)]
    reached = has.groupby("trial_id")["_e"].max()
    return fidelity.comparison_epoch([int(e) for e in reached])


def load_run(path: str | Path | RunDir, require_trials: bool = True,
             at_epoch: int | None = None, meta: dict | None = None) -> Run:
    """Load a finished or partial run from its directory.

    Args:
        path: runs/NAME (or its RunDir).
        require_trials: raise UserError when no trial has reported yet.
        at_epoch: compare trials at this epoch (default: `comparison_epoch`).
        meta: the run's meta as it is about to be written (default: its hpsearch.json).

    Returns:
        A `Run` with `epochs` and `trials` frames.
    """
    rd = path if isinstance(path, RunDir) else RunDir(path)
    meta = rd.read_meta() if meta is None else meta
    finished = bool(meta.get("finished"))
    rows: list[dict] = []
    config_keys: set[str] = set()
    # How Tune says each trial ended (its saved state here; absent for runs in a bucket):
    # an error.txt beside a TERMINATED trial is a failure it recovered from.
    statuses = tune_state.saved_statuses(rd.path) or {}
    for trial_dir in rd.trial_dirs():
        rows.extend(trial_rows(trial_dir, finished, config_keys, statuses))
    if not rows and require_trials:
        raise UserError(f"{rd.path}: no trial has reported a result yet")
    epochs = pd.DataFrame(rows)
    for col in SCHEMA + ["trial_id"]:
        if col not in epochs:
            epochs[col] = None
    fixed = set(meta.get("fixed") or {}) | {"epochs"}
    # A seed put in a grid or space is a replicate, not a hyperparameter to plot.
    params = [c for c in epochs.columns if c in config_keys and c not in fixed
              and c not in REPLICATE_KEYS]
    params = [c for c in params if epochs[c].nunique(dropna=True) > 1] or params
    metric = meta.get("metric", "val_metric")
    if metric not in epochs:
        epochs[metric] = None
    top = int(pd.to_numeric(epochs["epoch"], errors="coerce").max() or 0) if len(epochs) else 0
    if at_epoch is not None and not 1 <= at_epoch <= max(top, 1):
        raise UserError(f"--at-epoch {at_epoch}: the trials of {rd.path} ran epochs 1 to {top}")
    auto, n_at = comparison_epoch(epochs, metric)
    epoch = at_epoch or auto
    if at_epoch is not None:
        ep = pd.to_numeric(epochs["epoch"], errors="coerce")
        n_at = int(epochs[ep == epoch]["trial_id"].nunique())
    compare = {"epoch": epoch, "trials_reached": n_at, "trials": int(epochs["trial_id"].nunique()),
               "rule": ("chosen with --at-epoch" if at_epoch is not None else
                        "the highest epoch that at least max(3, 1/4 of the trials) reached")}
    trials = _with_packing(summarize_trials(epochs, params, meta.get("mode", "max"), metric,
                                            epoch), rd)
    return Run(rd.path, meta, epochs, trials, params, compare)


def _with_packing(trials: pd.DataFrame, rd: RunDir) -> pd.DataFrame:
    """Join packing.csv (GPU share and memory estimate per trial, written as trials start;
    a resumed trial appears twice, its last row counts)."""
    f = rd.file(PACKING)
    if not f.exists() or trials.empty:
        return trials
    try:
        packing = pd.read_csv(f).drop_duplicates("trial_id", keep="last")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, KeyError):
        return trials  # a driver killed mid-write; the analysis goes on without it
    cols = [c for c in ("trial_id", "gpu_share", "gpu_mem_mb_estimate", "share_from")
            if c in packing]
    return trials.merge(packing[cols], on="trial_id", how="left")


def summarize_trials(epochs: pd.DataFrame, params: list[str], mode: str,
                     metric: str = "val_metric", at_epoch: int | None = None) -> pd.DataFrame:
    """One row per trial: its params, final status, `score` (the search's `metric` at epoch
    `at_epoch`; NaN for a trial that did not reach it), `final_score` (the metric at the
    trial's last epoch), best and final val metric, gaps, time, memory.

    Args:
        epochs: the per-epoch frame.
        params: hyperparameter columns to carry over.
        mode: "max" or "min": the direction of `metric` (the search's).
        metric: the reported key the search optimised.
        at_epoch: the comparison epoch (default: `comparison_epoch`).

    Returns:
        The trials frame, best `score` first; trials that did not reach the comparison
        epoch after, by their final score.
    """
    if at_epoch is None:
        at_epoch = comparison_epoch(epochs, metric)[0]
    num = lambda c: pd.to_numeric(epochs[c], errors="coerce").replace(  # noqa: E731
        [np.inf, -np.inf], np.nan)
    df = epochs.assign(_vm=num("val_metric"), _gap=num("gap"), _t=num("time_total_s"),
                       _mem=num("gpu_mem_mb"), _dev=num("gpu_mem_device_mb"),
                       _s=num(metric) if metric in epochs else np.nan,
                       _e=pd.to_numeric(epochs["epoch"], errors="coerce"))
    df = df.sort_values(["trial_id", "epoch"], kind="stable")
    g = df.groupby("trial_id", sort=False)
    agg = g.agg(best_val_metric=("_vm", "max" if mode == "max" else "min"),
                max_gap=("_gap", "max"), time_total_s=("_t", "max"), gpu_mem_mb=("_mem", "max"),
                gpu_mem_device_mb=("_dev", "max"))
    last = g.tail(1).set_index("trial_id")
    vl = df.assign(_vl=num("val_loss")).groupby("trial_id", sort=False)["_vl"]
    tl = df.assign(_tl=num("train_loss")).groupby("trial_id", sort=False)["_tl"]
    # A finite runaway: the loss ended at least twice its best and above where it started
    # (tanh + SGD at a huge lr ends near a loss of 28 with no NaN; it is not a result).
    runaway = (vl.last() >= 2 * vl.min()) & (vl.last() > vl.first()) & (vl.min() > 0)
    at = df[df["_e"] == at_epoch].groupby("trial_id", sort=False)["_s"].last()
    # The val metric's own direction (accuracy up, perplexity down) when the search
    # optimised another key (e.g. --metric val_loss --mode min).
    vm_mode = mode if metric == "val_metric" else "max" if (
        df["_vm"].corr(df["_s"], method="spearman") or 0) < 0 else "min"
    agg = agg.assign(best_val_metric=g["_vm"].agg("max" if vm_mode == "max" else "min"))
    trials = pd.DataFrame({
        **{p: last[p] for p in [*params, *sorted(REPLICATE_KEYS)] if p in last},
        "score": at.reindex(last.index), "score_epoch": at_epoch,
        "runaway_loss": runaway.reindex(last.index).fillna(False).astype(bool),
        "final_score": last["_s"],
        "status": last["status"], "epochs": pd.to_numeric(last["epoch"]).fillna(0).astype(int),
        "best_val_metric": agg["best_val_metric"], "final_val_metric": last["_vm"],
        "final_train_loss": last["train_loss"], "final_val_loss": last["val_loss"],
        "min_train_loss": tl.min(), "min_val_loss": vl.min(),
        "final_gap": last["_gap"], "max_gap": agg["max_gap"],
        "time_total_s": agg["time_total_s"],
        "concurrent": concurrency(df).reindex(last.index),
        "gpu_mem_mb": agg["gpu_mem_mb"],
        "gpu_mem_device_mb": agg["gpu_mem_device_mb"],
        "n_params": last["n_params"] if "n_params" in last else None,
        "cpu_threads": last["cpu_threads"] if "cpu_threads" in last else None,
        "error": last["error"] if "error" in last else None,
    }).rename_axis("trial_id").reset_index()
    if len(trials):
        worst = -math.inf if mode == "max" else math.inf
        sign = 1 if mode == "max" else -1
        trials = trials.assign(
            _r=trials["score"].notna(), _k=sign * trials["score"].fillna(worst),
            _f=sign * trials["final_score"].fillna(worst))
        trials = trials.sort_values(["_r", "_k", "_f"], ascending=False, kind="stable")
        trials = trials.drop(columns=["_r", "_k", "_f"]).reset_index(drop=True)
    return trials
