"""Early-stopping reliability: at each epoch where trials were stopped early, how well the
scores there rank trials as a later epoch does (Spearman's rho over the trials that reached
both; `hpsearch.fidelity.rank_agreement`), with a plain-language warning when they do not."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hpsearch import fidelity
from hpsearch.analysis._common import metric_curves
from hpsearch.analysis._html import escape, table
from hpsearch.rundir import Run

__all__ = ["compute_agreement", "warnings", "section"]
MIN_PAIRS = 5
LOW_RHO = 0.5


def compute_agreement(run: Run, min_pairs: int = MIN_PAIRS) -> pd.DataFrame:
    """One row per epoch at which some trial was stopped early: epoch, reference (the
    highest later epoch that `min_pairs` of the trials reaching that epoch also reached),
    pairs, spearman."""
    curves = metric_curves(run)
    stopped = run.trials[run.trials["status"] == "stopped_early"]
    rows = []
    for epoch in sorted({int(e) for e in stopped["epochs"] if e > 0}):
        found = fidelity.rank_agreement(curves, epoch, min_pairs)
        if found is not None:
            rho, n, ref = found
            rows.append({"epoch": epoch, "reference_epoch": ref, "pairs": n,
                         "spearman": round(rho, 3)})
    return pd.DataFrame(rows, columns=["epoch", "reference_epoch", "pairs", "spearman"])


def warnings(agreement: pd.DataFrame) -> list[str]:
    """A sentence per epoch whose ranks predict later ranks poorly."""
    return [f"epoch-{r.epoch} ranks predict epoch-{r.reference_epoch} ranks poorly here "
            f"(Spearman {r.spearman:.2f} over {r.pairs} trials that reached both): trials "
            f"stopped at epoch {r.epoch} may have been good; raise --grace-period above "
            f"{r.epoch} or use --scheduler hyperband"
            for r in agreement.itertuples() if r.spearman < LOW_RHO]


def section(run: Run, out: Path) -> str:
    agree = compute_agreement(run)
    agree.to_csv(out / "early_stopping.csv", index=False)
    if agree.empty:
        return ("<p>No trial was stopped early at an epoch that enough trials also passed "
                f"(at least {MIN_PAIRS}): nothing to check.</p>")
    warn = "".join(f"<p><b>Warning:</b> {escape(w)}.</p>" for w in warnings(agree))
    note = ("<p>For each epoch at which trials were stopped early: Spearman's rank "
            "correlation between the scores there and at a later epoch, over the trials "
            "that reached both (those the early stopping let through, so it is measured on "
            "the better trials). Near 1: stopping there kept the right trials.</p>")
    return note + warn + table(agree)
