"""Vision Transformer classifier with pre- or post-LayerNorm blocks (vit-pytorch style)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import nn

from hpsearch.trainers import _loop
from hpsearch.trainers import data as datasets
from hpsearch.trainers._blocks import Block
from hpsearch.trainers.mlp import classification_loss

METRIC, MODE = "accuracy", "max"


@dataclass(frozen=True)
class Config(_loop.TrainConfig):
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


class ViT(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], classes: int, cfg: Config):
        super().__init__()
        c, h, w = image_shape
        if h % cfg.patch or w % cfg.patch:
            raise ValueError(f"image {h}x{w} is not divisible by patch {cfg.patch}")
        n_patches, p = (h // cfg.patch) * (w // cfg.patch), cfg.patch
        self.patchify = nn.Unfold(kernel_size=p, stride=p)  # (B, C*p*p, N)
        self.embed = nn.Linear(c * p * p, cfg.dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos = nn.Parameter(torch.randn(1, n_patches + 1, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.heads, cfg.dim * cfg.mlp_ratio, cfg.dropout, cfg.norm,
                  causal=False)
            for _ in range(cfg.layers))
        # Pre-norm leaves the residual stream un-normalised, so it needs a final LayerNorm.
        self.final_norm = nn.LayerNorm(cfg.dim) if cfg.norm == "pre" else nn.Identity()
        self.head = nn.Linear(cfg.dim, classes)

    def forward(self, x):  # x: (B, C, H, W)
        tokens = self.embed(self.patchify(x).transpose(1, 2))  # (B, N, D)
        cls = self.cls.expand(x.shape[0], -1, -1)
        z = torch.cat([cls, tokens], dim=1) + self.pos  # (B, N+1, D)
        for block in self.blocks:
            z = block(z)
        return self.head(self.final_norm(z[:, 0]))  # (B, classes)


LOSS = classification_loss


def load_data(cfg: Config) -> _loop.Data:
    """Train/val tensors for `cfg.data` (cached per process)."""
    ds = datasets.load_images(cfg.data)
    if ds.x_train.dim() != 4 or ds.x_train.shape[-1] < cfg.patch:
        raise ValueError(f"data {cfg.data!r} is not an image set the ViT can patch")
    return _loop.Data(ds.x_train, ds.y_train, ds.x_val, ds.y_val, ds.classes, ds.x_test,
                      ds.y_test)


def make_model(cfg: Config, data: _loop.Data) -> nn.Module:
    """The ViT for `cfg` shaped by `data` (also built on fake tensors for memory estimates)."""
    torch.manual_seed(cfg.seed)
    return ViT(tuple(data.x_train.shape[1:]), data.classes, cfg)


def build(cfg: Config):
    """Model and data for `cfg` (exposed for benchmarks and tests)."""
    data = load_data(cfg)
    return make_model(cfg, data), data


def train(cfg: Config, report: _loop.Report, checkpointer=None, test: bool = False) -> dict:
    """Train a ViT classifier with pre- or post-norm blocks (metric: accuracy)."""
    return _loop.fit_module(sys.modules[__name__], cfg, report, checkpointer, test)
