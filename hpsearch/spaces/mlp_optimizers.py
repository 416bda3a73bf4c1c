"""SGD vs momentum vs Adam vs AdamW on the MLP: lr, betas, momentum, batch size, depth."""

import optuna

from hpsearch.spaces._common import suggest_optimizer

TRAINER = "mlp"


def space(trial: optuna.Trial) -> dict:
    """Conditional space: betas only for adam/adamw, momentum only for momentum."""
    params = suggest_optimizer(trial)
    params["batch_size"] = trial.suggest_categorical("batch_size", [8, 16, 32, 64])
    params["depth"] = trial.suggest_int("depth", 1, 4)
    return params

# A seed-style hand grid (`hpsearch run --grid`): other settings stay at Config defaults.
GRID = {"optimizer": ["sgd", "momentum", "adam", "adamw"], "lr": [1e-3, 1e-2, 1e-1],
        "batch_size": [8, 32]}
