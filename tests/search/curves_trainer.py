"""Synthetic learning curves as a user trainer plugin (instant epochs): a higher lr starts
faster and ends worse (curves cross), adam peaks at a lower lr than sgd, and lr above 0.05
turns NaN from epoch 2 (diverges). `accuracy` is maximised; `curves_loss_trainer` reports
1 - accuracy as a loss to minimise, so the two searches must make the same decisions."""

import math
import time
from dataclasses import dataclass

MODE = "max"


@dataclass(frozen=True)
class Config:
    optimizer: str = "adam"
    lr: float = 1e-3
    width: float = 0.5
    epochs: int = 9
    epoch_s: float = 0.0  # each epoch sleeps this long (concurrent trials interleave)


def accuracy(cfg: Config, epoch: int) -> float:
    if cfg.lr > 0.05 and epoch >= 2:
        return math.nan
    best = -2.5 if cfg.optimizer == "adam" else -1.2
    quality = 0.9 - 0.08 * (math.log10(cfg.lr) - best) ** 2 - 0.1 * (cfg.width - 0.6) ** 2
    speed = 0.2 * 10 ** (0.5 * (math.log10(cfg.lr) - best))
    return 0.1 + (max(quality, 0.12) - 0.1) * (1 - math.exp(-speed * epoch))


def curves(cfg: Config, report, loss: bool) -> dict:
    row = {}
    for epoch in range(1, cfg.epochs + 1):
        time.sleep(cfg.epoch_s)
        acc = accuracy(cfg, epoch)
        row = {"epoch": epoch, "val_metric": 1 - acc if loss else acc, "epoch_time_s": 0.0,
               "status": "completed" if epoch == cfg.epochs else "running"}
        report(row)
    return row


def train(cfg: Config, report) -> dict:
    return curves(cfg, report, loss=False)
