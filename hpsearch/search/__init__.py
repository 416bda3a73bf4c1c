"""Distributed search: Ray Tune schedules Optuna-sampled trials with ASHA early stopping."""

import os as _os
import sys as _sys

if "ray" not in _sys.modules:
    # A local Ray's servers listen on loopback only (Ray reads this switch at import; the
    # public API sets it to "1" first when the user joins a cluster with an address).
    _os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from hpsearch.search.confirm import confirm_seeds  # noqa: E402
from hpsearch.search.runner import pull_results, resume_search, run_search  # noqa: E402
from hpsearch.search.tuner import build_tuner, validate  # noqa: E402

__all__ = ["build_tuner", "run_search", "resume_search", "validate", "confirm_seeds",
           "pull_results"]
