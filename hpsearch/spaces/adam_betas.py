"""Adam beta1 x beta2 at batch size 8 and 32 and two learning rates (the seed report's grid)."""

import optuna

from hpsearch.spaces.scales import suggest_one_minus

TRAINER = "mlp"
REPORT = ("Adam beta1 x beta2: beta2 0.6/0.7/0.9/0.99/0.999 x beta1 0.5/0.9/0.99 at batch "
          "size 8 and 32, lr 1e-3 and 1e-2; instability (high beta1 with low beta2) shows at "
          "lr 1e-2; tables of final and minimum train/val loss per cell")
# The report's hand grid; `hpsearch run --grid` evaluates exactly these 60 cells.
GRID = {"beta1": [0.5, 0.9, 0.99], "beta2": [0.6, 0.7, 0.9, 0.99, 0.999],
        "batch_size": [8, 32], "lr": [1e-3, 1e-2]}


def space(trial: optuna.Trial) -> dict:
    """beta1 in [0.5, 0.99], beta2 in [0.6, 0.9999] (sampled as log(1 - beta2), as the
    grid's 0.6 ... 0.999 are spaced), batch 8|32, lr in [1e-4, 3e-2] log."""
    return {
        "optimizer": "adam",
        "beta1": trial.suggest_float("beta1", 0.5, 0.99),
        "beta2": suggest_one_minus(trial, "beta2", 0.6, 0.9999),
        "batch_size": trial.suggest_categorical("batch_size", [8, 32]),
        "lr": trial.suggest_float("lr", 1e-4, 3e-2, log=True),
    }
