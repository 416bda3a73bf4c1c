"""Building blocks shared by the built-in spaces (define-by-run, conditional on optimizer)."""

from __future__ import annotations

import optuna

from hpsearch.spaces.scales import suggest_one_minus


def suggest_optimizer(trial: optuna.Trial, choices=("sgd", "momentum", "adam", "adamw"),
                      lr=(1e-4, 1e-1)) -> dict:
    """Optimizer, log-uniform lr, and only the knobs that optimizer uses.

    betas are sampled only for adam/adamw and momentum only for optimizer=momentum, so
    Optuna never learns from a parameter the trial ignored. beta2 in [0.9, 0.9999] is
    sampled as log(1 - beta2) (`scales.suggest_one_minus`).
    """
    params = {"optimizer": trial.suggest_categorical("optimizer", list(choices))}
    params["lr"] = trial.suggest_float("lr", *lr, log=True)
    if params["optimizer"] in ("adam", "adamw"):
        params["beta1"] = trial.suggest_float("beta1", 0.5, 0.99)
        params["beta2"] = suggest_one_minus(trial, "beta2", 0.9, 0.9999)
    if params["optimizer"] == "momentum":
        params["momentum"] = trial.suggest_float("momentum", 0.5, 0.99)
    if params["optimizer"] == "adamw":
        params["weight_decay"] = trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True)
    return params
