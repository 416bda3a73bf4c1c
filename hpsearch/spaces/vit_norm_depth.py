"""ViT pre- vs post-LayerNorm x layers 2/4/6 x optimizer."""

import optuna

from hpsearch.spaces._common import suggest_optimizer

TRAINER = "vit"
GRID = {"norm": ["pre", "post"], "layers": [2, 4, 6], "optimizer": ["sgd", "adamw"]}


def space(trial: optuna.Trial) -> dict:
    """norm pre|post, layers 2|4|6, optimizer and its knobs, lr in [1e-4, 1e-2]."""
    params = {"norm": trial.suggest_categorical("norm", ["pre", "post"]),
              "layers": trial.suggest_categorical("layers", [2, 4, 6])}
    params.update(suggest_optimizer(trial, choices=("sgd", "momentum", "adamw"), lr=(1e-4, 1e-2)))
    return params
