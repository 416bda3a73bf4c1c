"""Parameters near 1 searched on the scale practitioners tune them on: log(1 - value).

Adam's beta2 in [0.9, 0.9999] spans three decades of 1 - beta2 (0.1 to 1e-4); sampled
uniformly, 99% of draws fall below 0.999 (Adam's default) and a model needs many trials to
find the sliver near 1 where the good values sit. `suggest_one_minus` samples 1 - value
log-uniformly (a third of draws in each decade). Optuna records the parameter as
`one_minus_<name>` (the value it sampled); the trial's config, the trials table, the
analysis and exported configs all use `<name>` itself."""

from __future__ import annotations

import math

import optuna

__all__ = ["ONE_MINUS", "suggest_one_minus", "optuna_point", "one_minus_of"]

ONE_MINUS = "one_minus_"  # Optuna's name for a parameter sampled as log(1 - value)


def suggest_one_minus(trial: optuna.Trial, name: str, low: float, high: float) -> float:
    """`name` in [low, high] (high < 1) with 1 - value log-uniform in [1 - high, 1 - low]."""
    gap = trial.suggest_float(ONE_MINUS + name, 1.0 - high, 1.0 - low, log=True)
    return round(1.0 - gap, 12)


def one_minus_of(name: str) -> str | None:
    """The config name behind an Optuna name `one_minus_<name>` (None for any other)."""
    return name[len(ONE_MINUS):] if name.startswith(ONE_MINUS) else None


def optuna_point(point: dict) -> dict:
    """A config given to evaluate first (`--points`) as Optuna's names: each number below 1
    also as `one_minus_<name>`, so a space that samples it that way takes the given value
    (a space that samples `<name>` itself ignores the extra name)."""
    out = dict(point)
    for k, v in point.items():
        if (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                and v < 1 and ONE_MINUS + k not in point):
            out[ONE_MINUS + k] = 1.0 - v
    return out
