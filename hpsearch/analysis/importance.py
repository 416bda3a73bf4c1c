"""Hyperparameter importance with Optuna's evaluators (fANOVA, PED-ANOVA), computed from a
trials frame with the distributions the run's Optuna study recorded (`stored_distributions`;
synthetic tests and grid runs, which have no study, fall back to ones read off the frame)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from hpsearch.analysis._common import finite, is_categorical, use_log
from hpsearch.analysis._html import escape, img, save, table
from hpsearch.rundir import Run, layout
from hpsearch.spaces import scales

logger = logging.getLogger(__name__)
__all__ = ["EVALUATORS", "compute_importance", "stored_distributions", "distribution_of",
           "plot", "section"]


_UNREADABLE: set[str] = set()  # runs whose study could not be read (warned once)


def stored_distributions(run: Run) -> dict:
    """Each parameter's distribution as the run's Optuna study (optuna.db) recorded it;
    empty for a run without a study (a grid)."""
    study_name = run.meta.get("study_name")
    if not study_name or not run.rundir.file(layout.STUDY_DB).is_file():
        return {}
    try:
        study = optuna.load_study(study_name=study_name, storage=run.rundir.study_url)
    except Exception as exc:  # noqa: BLE001 (KeyError, or SQLAlchemy's for a damaged file)
        if str(run.path) in _UNREADABLE:
            return {}
        _UNREADABLE.add(str(run.path))
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        logger.warning("cannot read the Optuna study in %s (%s); the analysis bins the "
                       "parameters from the trials' own values", run.path, reason)
        return {}
    dists: dict = {}
    for t in study.get_trials(deepcopy=False):
        for name, d in t.distributions.items():
            dists.setdefault(name, d)
    return dists


def _evaluator(name: str, seed: int):
    if name == "fanova":
        return optuna.importance.FanovaImportanceEvaluator(seed=seed)
    if name == "ped_anova":
        return optuna.importance.PedAnovaImportanceEvaluator()
    raise ValueError(f"unknown evaluator {name!r}")


EVALUATORS = ("fanova", "ped_anova")
# fANOVA's random forest grows superlinearly with trials (1000 trials: ~20 s on 2 cores); past
# these sizes each evaluator sees a seeded random sample of the completed trials.
MAX_TRIALS = {"fanova": 300, "ped_anova": 2000}


def distribution_of(name: str, s: pd.Series):
    """The distribution a parameter's values in a frame suggest (None for a constant)."""
    if is_categorical(s) and not pd.api.types.is_float_dtype(s.dropna()):
        return optuna.distributions.CategoricalDistribution(sorted(s.dropna().unique().tolist(),
                                                                   key=str))
    v = pd.to_numeric(s, errors="coerce")
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return None  # a constant explains nothing
    return optuna.distributions.FloatDistribution(lo, hi, log=use_log(name, v))


def _to_study(trials: pd.DataFrame, params: list[str], value: str, mode: str,
              stored: dict | None = None):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    stored = stored or {}
    # A parameter the study sampled as log(1 - value) (scales.ONE_MINUS) is judged on that
    # scale, as it was searched: its column becomes 1 - value.
    gaps = {p for p in params if p not in stored and scales.ONE_MINUS + p in stored}
    dists = {p: stored.get(p) or stored.get(scales.ONE_MINUS + p) or d for p in params
             if (d := distribution_of(p, trials[p])) is not None}
    columns = {p: trials[p].tolist() for p in dists}  # tolist: numpy scalars -> Python values
    for p in gaps & set(dists):  # 1 - (1 - gap) rounds: kept inside the searched range
        d = dists[p]
        columns[p] = [min(max(1.0 - x, d.low), d.high) for x in columns[p]]
    values = trials[value].astype(float).tolist()
    study.add_trials([optuna.trial.create_trial(
        params={p: columns[p][i] for p in dists}, distributions=dists, value=values[i])
        for i in range(len(values))])
    return study, list(dists)


def compute_importance(trials: pd.DataFrame, params: list[str], mode: str = "max",
                       value: str = "score", evaluators=EVALUATORS,
                       seed: int = 0, statuses=("completed",),
                       distributions: dict | None = None) -> pd.DataFrame:
    """Importance of each parameter for `value`, per evaluator.

    Only trials whose status is in `statuses` and whose value is finite count, and only
    parameters every such trial has (a conditional one like beta1 exists only for Adam
    trials, and Optuna's evaluators need each parameter in all trials). `distributions`
    (from `stored_distributions`) gives each parameter's searched range and scale.

    Returns:
        Columns param, evaluator, importance (each evaluator's column sums to 1), sorted.
    """
    df = trials[trials["status"].isin(statuses)].copy()
    df[value] = finite(df[value])
    df = df[df[value].notna()]
    usable = [p for p in params if p in df and df[p].notna().all() and df[p].nunique() > 1]
    if len(df) < 3 or not usable:
        return pd.DataFrame(columns=["param", "evaluator", "importance"])
    rows = []
    for name in evaluators:
        sample = df.sample(MAX_TRIALS[name], random_state=seed) if len(df) > MAX_TRIALS[name] \
            else df
        try:
            study, names = _to_study(sample, usable, value, mode, distributions)
        except ValueError:  # a value outside its stored range (e.g. an enqueued point)
            study, names = _to_study(sample, usable, value, mode)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental-feature warnings
                imp = optuna.importance.get_param_importances(
                    study, evaluator=_evaluator(name, seed), params=names)
        except (RuntimeError, ValueError, ZeroDivisionError) as exc:
            logger.warning("importance (%s) failed: %s", name, exc)
            continue
        rows += [{"param": p, "evaluator": name, "importance": float(v)} for p, v in imp.items()]
    out = pd.DataFrame(rows, columns=["param", "evaluator", "importance"])
    out["importance"] = out["importance"].fillna(0.0).replace([np.inf, -np.inf], 0.0)
    return out.sort_values(["evaluator", "importance"], ascending=[True, False],
                           ignore_index=True)


def plot(result: pd.DataFrame, ax=None):
    """Grouped horizontal bars: one bar per evaluator for each parameter."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ax = ax or plt.subplots(figsize=(5.5, 0.5 + 0.45 * max(result["param"].nunique(), 1)))[1]
    if result.empty:
        ax.text(0.5, 0.5, "too few completed trials", ha="center", va="center")
        ax.set_axis_off()
        return ax
    sns.barplot(result, y="param", x="importance", hue="evaluator", ax=ax)
    ax.set_title("hyperparameter importance")
    return ax


BOOT_ROUNDS = 8
BOOT_MAX_TRIALS = {"fanova": 200, "ped_anova": 5000}  # bootstrap only below these sizes
MIN_TRIALS = 10


def bootstrap(trials: pd.DataFrame, params: list[str], mode: str, value: str = "score",
              statuses=("completed",), distributions: dict | None = None,
              rounds: int = BOOT_ROUNDS, seed: int = 0) -> pd.DataFrame:
    """10%-90% range of each importance over `rounds` bootstrap resamples of the trials
    (columns param, evaluator, low, high); an evaluator is resampled only below
    BOOT_MAX_TRIALS trials (fANOVA's forest is slow)."""
    df = trials[trials["status"].isin(statuses) & finite(trials[value]).notna()]
    frames = []
    for name in EVALUATORS:
        if len(df) < MIN_TRIALS or len(df) > BOOT_MAX_TRIALS[name]:
            continue
        for r in range(rounds):
            res = df.sample(len(df), replace=True, random_state=seed + r)
            frames.append(compute_importance(res, params, mode, value, (name,), seed + r,
                                             statuses, distributions))
    if not frames:
        return pd.DataFrame(columns=["param", "evaluator", "low", "high"])
    allr = pd.concat(frames)
    g = allr.groupby(["param", "evaluator"])["importance"]
    return pd.DataFrame({"low": g.quantile(0.1), "high": g.quantile(0.9)}).reset_index()


def warnings_for(imp: pd.DataFrame, n: int) -> list[str]:
    """Plain-language doubts: too few trials, evaluators that rank differently."""
    out = []
    if n < MIN_TRIALS:
        out.append(f"only {n} trials reached the comparison epoch: importance is a guess")
    wide = imp.pivot_table(index="param", columns="evaluator", values="importance")
    if wide.shape[1] == 2 and len(wide) >= 3:
        rho = wide.iloc[:, 0].rank().corr(wide.iloc[:, 1].rank())
        if pd.notna(rho) and rho < 0.3:
            out.append(f"fANOVA and PED-ANOVA rank the parameters differently (rank "
                       f"correlation {rho:.2f}): treat either ranking as uncertain")
    return out


def section(run: Run, out: Path) -> str:
    """The report section: figures written to `out`, returned as HTML."""
    statuses = ("completed", "stopped_early", "running")
    dists = stored_distributions(run)
    imp = compute_importance(run.trials, run.params, run.mode, value="score",
                             statuses=statuses, distributions=dists)
    boot = bootstrap(run.trials, run.params, run.mode, "score", statuses, dists)
    imp = imp.merge(boot, on=["param", "evaluator"], how="left")
    imp.to_csv(out / "importance.csv", index=False)
    n = int(run.trials["score"].notna().sum())
    note = (f"<p>Optuna fANOVA and PED-ANOVA on the {n} trials with a score at epoch "
            f"{run.compare.get('epoch')} ({escape(run.score_label)}; stopped-early trials "
            "that got there count, those that did not are left out); parameters that only "
            "some trials have (conditional ones) are left out. low/high: the 10%-90% range "
            f"over {BOOT_ROUNDS} bootstrap resamples of the trials.</p>")
    note += "".join(f"<p><b>Warning:</b> {escape(w)}.</p>" for w in warnings_for(imp, n))
    return note + img(save(plot(imp), out / "importance.png")) + table(imp)
