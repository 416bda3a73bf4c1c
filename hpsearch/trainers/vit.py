"""Vision Transformer classifier with pre- or post-LayerNorm blocks (vit-pytorch style)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from hpsearch.trainers import data as datasets
from hpsearch.trainers.mlp import LOSS
from hpsearch.trainers.settings import TrainConfig

METRIC, MODE = "accuracy", "max"


@dataclass(frozen=True)
class Config(TrainConfig):
    """ViT hyperparameters on top of the shared ones."""

    data: str = "digits"  # digits | fashion10k | cifar10:PATH
    layers: int = 4
    dim: int = 64
    heads: int = 4
    patch: int = 2
    mlp_ratio: int = 2
    # pre: x + f(LN(x)) (stable when deep); post: LN(x + f(x)) as in the original Transformer.
    norm: str = "pre"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.norm not in ("pre", "post"):
            raise ValueError(f"norm must be 'pre' or 'post', got {self.norm!r}")
        if self.layers < 1 or self.dim % self.heads:
            raise ValueError("layers must be >= 1 and dim divisible by heads")
        datasets.check_name(self.data, datasets.IMAGE_SETS)


__all__ = ["Config", "METRIC", "MODE", "LOSS", "load_data", "make_model", "build", "train"]


def load_data(cfg: Config):
    """Train/val tensors for `cfg.data` (cached per process)."""
    from hpsearch.trainers import _loop

    ds = datasets.load_images(cfg.data)
    if ds.x_train.dim() != 4 or ds.x_train.shape[-1] < cfg.patch:
        raise ValueError(f"data {cfg.data!r} is not an image set the ViT can patch")
    return _loop.Data(ds.x_train, ds.y_train, ds.x_val, ds.y_val, ds.classes, ds.x_test,
                      ds.y_test)


def make_model(cfg: Config, data):
    """The ViT for `cfg` shaped by `data` (also built on fake tensors for memory estimates)."""
    import torch

    from hpsearch.trainers.nets import ViT

    torch.manual_seed(cfg.seed)
    return ViT(tuple(data.x_train.shape[1:]), data.classes, cfg)


def build(cfg: Config):
    """Model and data for `cfg` (exposed for benchmarks and tests)."""
    data = load_data(cfg)
    return make_model(cfg, data), data


def train(cfg: Config, report, checkpointer=None, test: bool = False) -> dict:
    """Train a ViT classifier with pre- or post-norm blocks (metric: accuracy)."""
    from hpsearch.trainers import _loop

    return _loop.fit_module(sys.modules[__name__], cfg, report, checkpointer, test)


def __getattr__(name: str):
    """The network lives in nets.py (torch), imported on first use."""
    if name == "ViT":
        from hpsearch.trainers.nets import ViT

        return ViT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
