"""A user trainer that fills a disk: each epoch writes `mb_per_epoch` MiB into `ballast_dir`
(the disk-full test points it at the run directory's small filesystem)."""

import os
import time
from dataclasses import dataclass

MODE = "max"


@dataclass(frozen=True)
class Config:
    x: float = 0.5
    epochs: int = 4
    ballast_dir: str = ""
    mb_per_epoch: int = 2
    sleep_s: float = 0.2


def train(cfg: Config, report) -> dict:
    row = {}
    for epoch in range(1, cfg.epochs + 1):
        if cfg.ballast_dir:
            name = os.path.join(cfg.ballast_dir, f"{os.getpid()}-{time.monotonic_ns()}")
            with open(name, "wb") as f:
                f.write(b"\0" * (cfg.mb_per_epoch << 20))
        time.sleep(cfg.sleep_s)
        row = {"epoch": epoch, "val_metric": cfg.x * epoch, "epoch_time_s": cfg.sleep_s,
               "status": "completed" if epoch == cfg.epochs else "running"}
        report(row)
    return row
