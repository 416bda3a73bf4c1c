"""MLP classifier on offline image sets (Fashion-MNIST 10k, digits, penguins)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from hpsearch.trainers import data as datasets
from hpsearch.trainers.settings import TrainConfig

METRIC, MODE = "accuracy", "max"
ACTIVATION_NAMES = ("relu", "gelu", "tanh", "silu", "sigmoid")  # nets.ACTIVATIONS


@dataclass(frozen=True)
class Config(TrainConfig):
    """MLP hyperparameters on top of the shared ones."""

    data: str = "fashion10k"  # fashion10k | digits | penguins | cifar10:PATH
    depth: int = 2  # hidden layers
    width: int = 128
    activation: str = "relu"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        datasets.check_name(self.data, datasets.IMAGE_SETS)
        if self.depth < 0 or self.width < 1:
            raise ValueError("depth must be >= 0 and width >= 1")
        if self.activation not in ACTIVATION_NAMES:
            raise ValueError(f"activation must be one of {sorted(ACTIVATION_NAMES)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def LOSS(model, x, y, count: bool = True):  # noqa: N802 (the trainer contract's name)
    """`nets.classification_loss`: cross-entropy and the number of correct predictions."""
    from hpsearch.trainers.nets import classification_loss

    return classification_loss(model, x, y, count)


def load_data(cfg: Config):
    """Train/val tensors for `cfg.data` (cached per process)."""
    from hpsearch.trainers import _loop

    ds = datasets.load_images(cfg.data)
    return _loop.Data(ds.x_train, ds.y_train, ds.x_val, ds.y_val, ds.classes, ds.x_test,
                      ds.y_test)


def make_model(cfg: Config, data):
    """The network for `cfg` shaped by `data` (also built on fake tensors for memory estimates)."""
    import torch

    from hpsearch.trainers.nets import MLP

    torch.manual_seed(cfg.seed)  # same seed, same initial weights
    return MLP(data.x_train[0].numel(), data.classes, cfg)


def build(cfg: Config):
    """Model and data for `cfg` (exposed for benchmarks and tests)."""
    data = load_data(cfg)
    return make_model(cfg, data), data


def train(cfg: Config, report, checkpointer=None, test: bool = False) -> dict:
    """Train an MLP classifier (metric: accuracy)."""
    from hpsearch.trainers import _loop

    return _loop.fit_module(sys.modules[__name__], cfg, report, checkpointer, test)


def __getattr__(name: str):
    """The network and loss live in nets.py (torch), imported on first use."""
    if name in ("MLP", "ACTIVATIONS", "classification_loss"):
        from hpsearch.trainers import nets

        return getattr(nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
