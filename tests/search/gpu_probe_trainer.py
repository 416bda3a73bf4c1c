"""A user trainer (`--trainer tests.search.gpu_probe_trainer:train`) that reports where it
ran: the Ray node and CUDA_VISIBLE_DEVICES. Test code, so it may import Ray."""

import os
import time
from dataclasses import dataclass

MODE = "max"
METRIC = "score"


@dataclass(frozen=True)
class Config:
    x: float = 0.5
    epochs: int = 2
    sleep_s: float = 1.0


def train(cfg: Config, report) -> dict:
    import ray

    node = ray.get_runtime_context().get_node_id()
    row = {}
    for epoch in range(1, cfg.epochs + 1):
        time.sleep(cfg.sleep_s)  # overlap trials so they must spread over the cluster
        row = {"epoch": epoch, "val_metric": cfg.x * epoch, "train_loss": 1.0, "val_loss": 1.0,
               "gap": 0.0, "epoch_time_s": cfg.sleep_s, "node_id": node,
               "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
               "status": "completed" if epoch == cfg.epochs else "running"}
        report(row)
    return row
