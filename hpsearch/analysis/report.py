"""`hpsearch analyze`: compute every analysis for a run and write runs/NAME/report/
(figures, CSV tables, summary in md/html/csv, and report.html embedding it all)."""

from __future__ import annotations

import html
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: files only

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from hpsearch.analysis import curves, importance, overfitting, sensitivity, summary  # noqa: E402
from hpsearch.rundir import Run, layout, load_run  # noqa: E402

logger = logging.getLogger(__name__)
__all__ = ["write_report"]
MAX_PAIRS = 15


def _save(ax, path: Path) -> str:
    fig = ax.figure
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>\n"


def _img(name: str) -> str:
    return f'<figure><img src="{html.escape(name)}" alt="{html.escape(name)}"></figure>'


def _table(df: pd.DataFrame, max_rows: int = 50) -> str:
    return df.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                     na_rep="", border=0, classes="data")


def _sensitivity(run: Run, out: Path) -> str:
    label = f"median best val {run.metric_name}"
    parts = []
    for x, y in sensitivity.pairs(run.params)[:MAX_PAIRS]:
        cells = sensitivity.compute_sensitivity(run.trials, x, y)
        if cells.empty:
            continue
        ax = sensitivity.plot(cells, x, y, mode=run.mode, label=label)
        parts.append(_img(_save(ax, out / f"sensitivity_{y}_x_{x}.png")))
    marg = []
    for p in run.params:
        m = sensitivity.compute_marginal(run.trials, p)
        if not m.empty:
            ax = sensitivity.plot_marginal(m, p, label=f"best val {run.metric_name}")
            marg.append(_img(_save(ax, out / f"marginal_{p}.png")))
    note = ("<p>Cell: median over trials of each trial's best validation "
            f"{html.escape(run.metric_name)}; n = trials; ✕k = diverged or errored trials.</p>")
    return note + '<div class="grid">' + "".join(parts + marg) + "</div>"


def _importance(run: Run, out: Path) -> str:
    completed = (run.trials["status"] == "completed").sum()
    statuses = ("completed",) if completed >= 3 else ("completed", "stopped_early")
    imp = importance.compute_importance(run.trials, run.params, run.mode, statuses=statuses,
                                        distributions=importance.stored_distributions(run))
    imp.to_csv(out / "importance.csv", index=False)
    note = (f"<p>Optuna fANOVA and PED-ANOVA on {', '.join(statuses)} trials; parameters "
            "that only some trials have (conditional ones) are left out.</p>")
    return note + _img(_save(importance.plot(imp), out / "importance.png")) + _table(imp)


def _overfitting(run: Run, out: Path) -> str:
    res = overfitting.compute_overfitting(run.epochs, run.params)
    res.to_csv(out / "overfitting.csv", index=False)
    by = overfitting.gap_by(res, run.params)
    by.to_csv(out / "gap_by_param.csv", index=False)
    flagged = res[res["flagged"]]
    head = f"<p>{len(flagged)} of {len(res)} trials flagged.</p>"
    return (head + _img(_save(overfitting.plot(run.epochs, res), out / "overfitting.png"))
            + _table(by) + _table(flagged if len(flagged) else res.head(10)))


def _curves(run: Run, out: Path) -> str:
    cur = curves.compute_curves(run.epochs, run.trials, run.params)
    figs = [_save(curves.plot(cur, "epoch", metric_name=run.metric_name), out / "curves_epoch.png"),
            _save(curves.plot(cur, "time_total_s", metric_name=run.metric_name),
                  out / "curves_time.png")]
    mem = curves.compute_memory(run.trials, run.params)
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
    return "".join(_img(f) for f in figs) + "<h3>GPU memory per config (MB)</h3>" + note + \
        _table(mem, 30)


_CSS = """body{font-family:sans-serif;margin:2em;max-width:1400px}
.grid{display:flex;flex-wrap:wrap;gap:8px}figure{margin:4px}img{max-width:640px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{padding:3px 8px;
border-bottom:1px solid #ddd;text-align:right}tr.best td{background:#eef7ee}"""


def write_report(run: Run | str | Path, fmt: str = "md") -> Path:
    """Analyze a run and write its report directory.

    Args:
        run: a loaded run, or runs/NAME (finished or partial).
        fmt: format of the summary table file: md, html or csv.

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
             f"metric val_{html.escape(run.metric_name)} ({run.mode}); "
             f"{'finished' if meta.get('finished') else 'partial run'}.</p>")
    sections = [
        _section("Summary", intro + summary.render(summ, "html")),
        _section("Best trials", _table(run.trials, 15)),
        _section("Sensitivity", _sensitivity(run, out)),
        _section("Importance", _importance(run, out)),
        _section("Overfitting", _overfitting(run, out)),
        _section("Learning curves and memory", _curves(run, out)),
    ]
    title = f"hpsearch report: {run_dir.name}"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            + "".join(sections) + "</body></html>")
    (out / "report.html").write_text(page, encoding="utf-8")
    return out / "report.html"
