"""Adam beta1 x beta2 at batch size 8 and 32, the seed experiment's grid as a search."""

import optuna

TRAINER = "mlp"
# The seeds' hand grid; `hpsearch run --grid` evaluates exactly these.
GRID = {"beta1": [0.5, 0.9, 0.99], "beta2": [0.9, 0.99, 0.999], "batch_size": [8, 32]}


def space(trial: optuna.Trial) -> dict:
    """beta1 in [0.5, 0.99], beta2 in [0.9, 0.9999], batch 8|32, Adam at a fixed lr."""
    return {
        "optimizer": "adam",
        "beta1": trial.suggest_float("beta1", 0.5, 0.99),
        "beta2": trial.suggest_float("beta2", 0.9, 0.9999),
        "batch_size": trial.suggest_categorical("batch_size", [8, 32]),
    }
