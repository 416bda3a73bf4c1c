"""ReLU vs tanh vs sigmoid on the MLP, under SGD, momentum and Adam, low to very high lr."""

import optuna

from hpsearch.spaces._common import suggest_optimizer

TRAINER = "mlp"
REPORT = ("MLP activations: relu / tanh / sigmoid x optimizer; ReLU with plain SGD at a high "
          "lr is the combination that goes NaN, saturating activations stay finite")


def space(trial: optuna.Trial) -> dict:
    """activation relu|tanh|sigmoid, depth 1-4, optimizer and its knobs, lr in [1e-4, 3]."""
    params = {"activation": trial.suggest_categorical("activation", ["relu", "tanh", "sigmoid"]),
              "depth": trial.suggest_int("depth", 1, 4)}
    params.update(suggest_optimizer(trial, choices=("sgd", "momentum", "adam"), lr=(1e-4, 3.0)))
    return params


# Deep (4 hidden layers) so activations matter; lr up to 3, where ReLU + SGD diverges.
GRID = {"activation": ["relu", "tanh", "sigmoid"], "optimizer": ["sgd", "momentum", "adam"],
        "lr": [1e-2, 1e-1, 1.0, 3.0], "depth": [4]}
