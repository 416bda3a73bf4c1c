"""Distributed search: Ray Tune schedules Optuna-sampled trials with ASHA early stopping."""

from hpsearch.search.confirm import confirm_seeds
from hpsearch.search.runner import pull_results, resume_search, run_search
from hpsearch.search.tuner import build_tuner, validate

__all__ = ["build_tuner", "run_search", "resume_search", "validate", "confirm_seeds",
           "pull_results"]
