"""The run directory: its one owner (file names, meta, lock, atomic writes, permissions) and
its tables (per-epoch and per-trial frames). Search writes through it, analysis reads it."""

from hpsearch.rundir import layout, tune_state
from hpsearch.rundir.layout import RESULT_FILES, RunDir, atomic_write

__all__ = ["RunDir", "Run", "load_run", "summarize_trials", "atomic_write", "SCHEMA",
           "RESULT_FILES", "layout", "tune_state"]

_TABLES = ("SCHEMA", "Run", "load_run", "summarize_trials")


def __getattr__(name: str):
    """The tables' names, imported on first use (PEP 562): they import pandas (~0.3 s),
    which the CLI's error paths and the search's own modules do not need."""
    if name in _TABLES:
        from hpsearch.rundir import tables

        return getattr(tables, name)
    raise AttributeError(f"module 'hpsearch.rundir' has no attribute {name!r}")
