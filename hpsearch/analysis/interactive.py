"""Interactive, offline views: Optuna's plotly visualizations (parallel coordinates, slice,
contour, intermediate values, empirical distribution) of the run's trials at the comparison
epoch, each a page beside report.html sharing one local plotly.min.js (no network)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import optuna
import pandas as pd

from hpsearch.analysis import importance
from hpsearch.analysis._common import metric_curves
from hpsearch.analysis._html import escape
from hpsearch.rundir import Run

logger = logging.getLogger(__name__)
__all__ = ["to_study", "figures", "section", "MAX_TRIALS"]
MAX_TRIALS = 500


def to_study(run: Run) -> optuna.Study:
    """An in-memory study of the run's trials: value = score at the comparison epoch (trials
    that did not reach it: PRUNED, no value), intermediate values = their learning curve,
    each trial with only the parameters it used (conditional spaces)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if run.mode == "max" else "minimize")
    stored = importance.stored_distributions(run)
    dists = {}
    for p in run.params:
        d = stored.get(p) or importance.distribution_of(p, run.trials[p])
        if d is not None:
            dists[p] = d
    curves = metric_curves(run)
    frozen = []
    # The best MAX_TRIALS trials (run.trials is best first): a plotly page of 10,000 learning
    # curves would be tens of MB and unreadable.
    for row in run.trials.head(MAX_TRIALS).itertuples(index=False):
        params = {p: _plain(getattr(row, p)) for p in dists
                  if pd.notna(getattr(row, p, math.nan))}
        score = row.score
        ok = score is not None and pd.notna(score) and math.isfinite(float(score))
        try:
            frozen.append(optuna.trial.create_trial(
                params=params, distributions={p: dists[p] for p in params},
                value=float(score) if ok else None,
                state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.PRUNED,
                intermediate_values=curves.get(row.trial_id, {}),
                user_attrs={"trial_id": row.trial_id, "status": row.status}))
        except ValueError:  # a value outside the recorded range (e.g. a --points config)
            continue
    study.add_trials(frozen)
    return study


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def figures(study: optuna.Study, pair: tuple[str, str] | None = None) -> dict:
    """name -> plotly figure; a view Optuna cannot draw for this study is left out."""
    vis = optuna.visualization
    makers = {"parallel_coordinate": lambda: vis.plot_parallel_coordinate(study),
              "slice": lambda: vis.plot_slice(study),
              "intermediate_values": lambda: vis.plot_intermediate_values(study),
              "edf": lambda: vis.plot_edf(study)}
    if pair:
        makers["contour"] = lambda: vis.plot_contour(study, params=list(pair))
    out = {}
    for name, make in makers.items():
        try:
            out[name] = make()
        except (ValueError, KeyError, ImportError) as exc:
            logger.info("interactive %s not drawn: %s", name, exc)
    return out


def section(run: Run, out: Path) -> str:
    study = to_study(run)
    if not any(t.value is not None for t in study.trials):
        return "<p>No trial reached the comparison epoch: nothing to draw.</p>"
    from hpsearch.analysis.sensitivity import chosen_pairs

    pairs = chosen_pairs(run.trials, run.params)
    parts = []
    for name, fig in figures(study, pairs[0] if pairs else None).items():
        fig.update_layout(title=f"{name.replace('_', ' ')}: {run.score_label}")
        path = out / f"interactive_{name}.html"
        fig.write_html(path, include_plotlyjs="directory", full_html=True)
        parts.append(f'<p><a href="{path.name}">{escape(name.replace("_", " "))}</a></p>'
                     f'<iframe src="{path.name}" width="100%" height="460" '
                     'style="border:0"></iframe>')
    note = (f"<p>Optuna's plotly views of the best {min(len(run.trials), MAX_TRIALS)} "
            f"trials, valued at epoch "
            f"{run.compare.get('epoch')} (trials stopped before it appear only in the "
            "intermediate values); hover for a trial's parameters. Works offline: plotly.js "
            "is the local plotly.min.js.</p>")
    return note + "".join(parts)
