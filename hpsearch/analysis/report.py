"""`hpsearch analyze`: compute every analysis for a run and write runs/NAME/report/
(figures, CSV tables, summary in md/html/csv, and report.html embedding it all)."""

from __future__ import annotations

import html
import logging
from pathlib import Path

import pandas as pd

from hpsearch.analysis import (
    curves,
    importance,
    interactive,
    losses,
    overfitting,
    sensitivity,
    stopping,
    summary,
)
from hpsearch.analysis import predicted as predicted_view
from hpsearch.analysis._html import table
from hpsearch.rundir import Run, layout, load_run

logger = logging.getLogger(__name__)
__all__ = ["write_report", "SECTIONS"]

# (title, section(run, out_dir) -> HTML): a new analysis view is one module plus one line here.
SECTIONS = [
    ("Sensitivity", sensitivity.section),
    ("Importance", importance.section),
    ("Overfitting", overfitting.section),
    ("Losses per grid cell", losses.section),
    ("Early-stopping reliability", stopping.section),
    ("Interactive views", interactive.section),
    ("Learning curves and memory", curves.section),
]


def _trials_table(run: Run) -> str:
    """Every trial (up to 100; diverged and failed ones always), the columns that fit a
    page: rank order by score at the comparison epoch, then final score."""
    cols = ["trial_id", "status", "epochs", "score", "final_score", *run.params,
            "n_params", "time_total_s", "concurrent", "runaway_loss", "error"]
    t = run.trials[[c for c in cols if c in run.trials]]
    bad = t[t["status"].isin(("diverged", "error"))]
    shown = pd.concat([t.head(100), bad]).drop_duplicates("trial_id")
    note = (f"<p>score = {html.escape(run.score_label)}; final_score = the metric at the "
            "trial's last epoch; n_params = trainable parameters; time_total_s = the trial's "
            "training wall-clock; concurrent = how many trials ran at once on its machine "
            f"on average (1 = alone). {len(shown)} of {len(t)} trials; all of them in "
            "trials.csv.</p>" + curves.contention_note(run.trials, html=True))
    return note + '<div style="overflow-x:auto">' + table(shown, len(shown)) + "</div>"


def _ranked_by(df: pd.DataFrame, metric_name: str) -> str:
    metric = str(df["metric"].iloc[0]) if "metric" in df and len(df) else "val_metric"
    return f"val_metric ({metric_name})" if metric == "val_metric" else metric


def _exported_table(path: Path, metric_name: str) -> str:
    """The last `hpsearch export --confirm-seeds`: each exported config re-trained on fresh
    seeds, validation (what ranks them) and the held-out test metric (reported only)."""
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return "<p>exported_confirmed.csv could not be read.</p>"
    return (f"<p>From the last <code>hpsearch export --confirm-seeds</code>: each exported "
            f"config re-trained on {int(df['seeds'].max()) if len(df) else 0} fresh seed(s). "
            f"mean/std: {html.escape(_ranked_by(df, metric_name))}, which ranks them; "
            "test_mean/test_std: the held-out test split, which no search, ranking or "
            "table of this report uses. Searched trials are never evaluated on it.</p>"
            + table(df, 50))


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>\n"


_CSS = """body{font-family:sans-serif;margin:2em;max-width:1400px}
.grid{display:flex;flex-wrap:wrap;gap:8px}figure{margin:4px}img{max-width:640px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{padding:3px 8px;
border-bottom:1px solid #ddd;text-align:right}tr.best td{background:#eef7ee}"""


def write_report(run: Run | str | Path, fmt: str = "md", predicted: bool = False) -> Path:
    """Analyze a run and write its report directory.

    Args:
        run: a loaded run, or runs/NAME (finished or partial).
        fmt: format of the summary table file: md, html or csv.
        predicted: add the "Predicted final scores" section (`analysis/predicted.py`).

    Returns:
        Path of report.html.
    """
    if not isinstance(run, Run):
        run = load_run(run)
    run_dir = run.path
    out = run.rundir.report_dir
    out.mkdir(exist_ok=True)
    run.epochs.to_csv(out / layout.EPOCHS, index=False)
    run.trials.to_csv(out / layout.TRIALS, index=False)
    summ = summary.compute_summary(run.trials, run.meta.get("trainer", "?"), run.mode)
    (out / f"summary.{fmt}").write_text(summary.render(summ, fmt))
    counts = run.trials["status"].value_counts().to_dict()
    meta = run.meta
    intro = (f"<p>trainer <b>{html.escape(str(meta.get('trainer')))}</b>, space "
             f"<b>{html.escape(str(meta.get('space')))}</b>, {len(run.trials)} trials "
             f"({html.escape(', '.join(f'{n} {s}' for s, n in sorted(counts.items())))}), "
             f"metric {html.escape(run.metric)} ({run.mode}); "
             f"{'finished' if meta.get('finished') else 'partial run'}. Every comparison "
             f"is at epoch {run.compare.get('epoch')} "
             f"({html.escape(str(run.compare.get('rule')))}; "
             f"{run.compare.get('trials_reached')} of {run.compare.get('trials')} trials "
             "reached it): best and median are scores at that epoch, and trials stopped "
             "before it are counted but not compared. `hpsearch analyze --at-epoch N` "
             "compares at another epoch.</p>")
    fair = "".join(f"<li>{html.escape(line)}</li>" for line in
                   summary.fair_lines(run.trials, run.mode))
    fair = (f"<p>Each level at its own best learning rate (median of the trials in that lr "
            f"range, their range and count, at epoch {run.compare.get('epoch')}):</p>"
            f"<ul>{fair}</ul>") if fair else ""
    sections = [_section("Summary", intro + fair + summary.render(summ, "html")),
                _section("Trials", _trials_table(run))]
    sections += [_section(title, fn(run, out)) for title, fn in SECTIONS]
    exported = out / layout.EXPORTED
    if exported.exists():
        sections.insert(2, _section("Exported configs on held-out test data",
                                    _exported_table(exported, run.metric_name)))
    if predicted:
        sections.append(_section("Predicted final scores (a model's estimate)",
                                 predicted_view.section(run, out)))
    title = f"hpsearch report: {run_dir.name}"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            + "".join(sections) + "</body></html>")
    (out / "report.html").write_text(page, encoding="utf-8")
    return out / "report.html"
