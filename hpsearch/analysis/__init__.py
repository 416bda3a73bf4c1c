"""Analysis of runs: tidy frames, sensitivity, importance, overfitting, curves, report, export."""

from hpsearch.analysis.frame import Run, load_run

__all__ = ["Run", "load_run"]
