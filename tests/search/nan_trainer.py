"""A user trainer that reports a NaN metric while saying status "running" (x > 0.5), as a
buggy or unstable user model would."""

import math
from dataclasses import dataclass

MODE = "max"


@dataclass(frozen=True)
class Config:
    x: float = 0.5
    epochs: int = 3


def train(cfg: Config, report) -> dict:
    row = {}
    for epoch in range(1, cfg.epochs + 1):
        value = math.nan if cfg.x > 0.5 and epoch >= 2 else cfg.x
        row = {"epoch": epoch, "val_metric": value, "epoch_time_s": 0.01,
               "status": "completed" if epoch == cfg.epochs else "running"}
        report(row)
    return row
