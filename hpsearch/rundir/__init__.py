"""The run directory: its one owner (file names, meta, lock, atomic writes, permissions) and
its tables (per-epoch and per-trial frames). Search writes through it, analysis reads it."""

from hpsearch.rundir import layout, tune_state
from hpsearch.rundir.layout import RESULT_FILES, RunDir, atomic_write
from hpsearch.rundir.tables import SCHEMA, Run, load_run, summarize_trials

__all__ = ["RunDir", "Run", "load_run", "summarize_trials", "atomic_write", "SCHEMA",
           "RESULT_FILES", "layout", "tune_state"]
