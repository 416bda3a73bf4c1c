"""Distributed search: Ray Tune schedules Optuna-sampled trials with ASHA early stopping."""

import os as _os
import sys as _sys

if "ray" not in _sys.modules:
    # A local Ray's servers listen on loopback only (Ray reads this switch at import; the
    # public API sets it to "1" first when the user joins a cluster with an address).
    _os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

__all__ = ["build_tuner", "run_search", "resume_search", "validate", "confirm_seeds",
           "pull_results"]

# Where each export lives. They are imported on first use (PEP 562): a Ray worker imports
# this package to reach `search.trainable` and must not pay for the driver's modules
# (runner, tuner, confirm pull in torch, pandas and every trainer).
_EXPORTS = {"build_tuner": "tuner", "validate": "checks", "run_search": "runner",
            "resume_search": "runner", "pull_results": "runner", "confirm_seeds": "confirm"}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
