"""A trainer whose epochs take a known time (sleep), for measuring orchestration overhead."""

import time
from dataclasses import dataclass

MODE, METRIC = "max", "score"


@dataclass(frozen=True)
class Config:
    x: float = 0.5
    epochs: int = 1
    epoch_s: float = 1.0


def train(cfg: Config, report) -> dict:
    row = {}
    for epoch in range(1, cfg.epochs + 1):
        time.sleep(cfg.epoch_s)
        row = {"epoch": epoch, "val_metric": cfg.x, "train_loss": 0.0, "val_loss": 0.0,
               "gap": 0.0, "epoch_time_s": cfg.epoch_s,
               "status": "completed" if epoch == cfg.epochs else "running"}
        report(row)
    return row
