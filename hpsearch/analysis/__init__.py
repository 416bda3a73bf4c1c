"""Analysis of runs: pure functions over a run's frames (sensitivity, importance,
overfitting, curves, summary), the report, and the export of best configs."""

from hpsearch.rundir import Run, load_run

__all__ = ["Run", "load_run"]
