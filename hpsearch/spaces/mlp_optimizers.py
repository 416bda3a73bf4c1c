"""SGD vs momentum vs Adam vs AdamW on the MLP: lr, betas, momentum, decay, batch size, depth."""

import optuna

from hpsearch.spaces._common import suggest_optimizer

TRAINER = "mlp"
REPORT = ("MLP optimizers: SGD vs momentum vs Adam vs AdamW (AdamW with its usual decay "
          "0.01) over lr 1e-3/1e-2/1e-1 at batch size 8 and 32")


def space(trial: optuna.Trial) -> dict:
    """Conditional space: betas only for adam/adamw, momentum only for momentum, decay only
    for adamw (where decoupled decay is what sets it apart from adam)."""
    params = suggest_optimizer(trial)
    params["batch_size"] = trial.suggest_categorical("batch_size", [8, 16, 32, 64])
    params["depth"] = trial.suggest_int("depth", 1, 4)
    return params


# The report's hand grid (`hpsearch run --grid`): other settings stay at Config defaults
# (adamw: weight_decay 0.01).
GRID = {"optimizer": ["sgd", "momentum", "adam", "adamw"], "lr": [1e-3, 1e-2, 1e-1],
        "batch_size": [8, 32]}
