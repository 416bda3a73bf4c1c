"""MLP classifier on offline image sets (Fashion-MNIST 10k, digits, penguins)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.trainers import _loop
from hpsearch.trainers import data as datasets

METRIC, MODE = "accuracy", "max"
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU,
               "sigmoid": nn.Sigmoid}


@dataclass(frozen=True)
class Config(_loop.TrainConfig):
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
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class MLP(nn.Module):
    def __init__(self, n_in: int, n_out: int, cfg: Config):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(cfg.depth):
            layers += [nn.Linear(n_in if i == 0 else cfg.width, cfg.width),
                       ACTIVATIONS[cfg.activation]()]
            if cfg.dropout:
                layers.append(nn.Dropout(cfg.dropout))
        layers.append(nn.Linear(cfg.width if cfg.depth else n_in, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # x: (B, C, H, W) -> logits (B, classes)
        return self.net(x)


def classification_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        count: bool = True):
    """Cross-entropy and, when `count`, the number of correct predictions (the loop counts
    on a fraction of training steps: three extra kernels a step cost a small MLP ~25%)."""
    logits = model(x)
    loss = F.cross_entropy(logits.float(), y)
    return loss, ((logits.argmax(-1) == y).sum() if count else None)


LOSS = classification_loss


def load_data(cfg: Config) -> _loop.Data:
    """Train/val tensors for `cfg.data` (cached per process)."""
    ds = datasets.load_images(cfg.data)
    return _loop.Data(ds.x_train, ds.y_train, ds.x_val, ds.y_val, ds.classes, ds.x_test,
                      ds.y_test)


def make_model(cfg: Config, data: _loop.Data) -> nn.Module:
    """The network for `cfg` shaped by `data` (also built on fake tensors for memory estimates)."""
    torch.manual_seed(cfg.seed)  # same seed, same initial weights
    return MLP(data.x_train[0].numel(), data.classes, cfg)


def build(cfg: Config):
    """Model and data for `cfg` (exposed for benchmarks and tests)."""
    data = load_data(cfg)
    return make_model(cfg, data), data


def train(cfg: Config, report: _loop.Report, checkpointer=None, test: bool = False) -> dict:
    """Train an MLP classifier (metric: accuracy)."""
    return _loop.fit_module(sys.modules[__name__], cfg, report, checkpointer, test)
