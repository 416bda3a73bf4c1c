"""LSTM vs GPT language models x optimizer x layers 1/2/4, scored by perplexity."""

import optuna

from hpsearch.spaces._common import suggest_optimizer

TRAINER = "lm"
REPORT = ("Language models: LSTM vs GPT x SGD/momentum/Adam/AdamW x layers 1/2/4 by "
          "validation perplexity; the adaptive optimizers lead, and the deeper GPT is worse "
          "at this data size")
GRID = {"model": ["lstm", "gpt"], "optimizer": ["sgd", "momentum", "adam", "adamw"],
        "layers": [1, 2, 4]}


def space(trial: optuna.Trial) -> dict:
    """model lstm|gpt, layers 1|2|4, optimizer and its knobs, lr in [1e-4, 3e-2]."""
    params = {"model": trial.suggest_categorical("model", ["lstm", "gpt"]),
              "layers": trial.suggest_categorical("layers", [1, 2, 4])}
    params.update(suggest_optimizer(trial, lr=(1e-4, 3e-2)))
    return params
