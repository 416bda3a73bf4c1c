"""ViT pre- vs post-LayerNorm x layers 2/4/6 x optimizer (sgd, momentum, adam, adamw)."""

import optuna

from hpsearch.spaces._common import suggest_optimizer

TRAINER = "vit"
REPORT = ("ViT: pre- vs post-LayerNorm x layers 2/4/6 x SGD/momentum/Adam/AdamW at lr 3e-3; "
          "post-norm degrades with depth while pre-norm trains, and the adaptive optimizers "
          "lead")
GRID = {"norm": ["pre", "post"], "layers": [2, 4, 6],
        "optimizer": ["sgd", "momentum", "adam", "adamw"], "lr": [3e-3]}


def space(trial: optuna.Trial) -> dict:
    """norm pre|post, layers 2|4|6, optimizer and its knobs, lr in [1e-4, 1e-2]."""
    params = {"norm": trial.suggest_categorical("norm", ["pre", "post"]),
              "layers": trial.suggest_categorical("layers", [2, 4, 6])}
    params.update(suggest_optimizer(trial, lr=(1e-4, 1e-2)))
    return params
