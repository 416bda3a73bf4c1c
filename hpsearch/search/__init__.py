"""Distributed search: Ray Tune schedules Optuna-sampled trials with ASHA early stopping."""

from hpsearch.search.runner import build_tuner, resume_search, run_search, validate

__all__ = ["build_tuner", "run_search", "resume_search", "validate"]
