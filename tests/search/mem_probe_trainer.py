"""A user trainer whose memory estimate grows with `width` (it has load_data/make_model/LOSS,
so hpsearch can estimate it) and that reports the GPU share Ray gave it and when it ran.
Its trials never train, so the Ray workers running them never import torch: only the
estimate, in the driver, does (its Config extends the torch-free TrainConfig)."""

import os
import time
from dataclasses import dataclass

from hpsearch.trainers import TrainConfig
from hpsearch.trainers.mlp import LOSS  # noqa: F401 (the MLP's loss; torch on first call)

MODE = "max"
METRIC = "score"


@dataclass(frozen=True)
class Config(TrainConfig):
    width: int = 64
    sleep_s: float = 1.0
    # Reported as gpu_mem_mb when > 0: stands in for a peak measured on a GPU.
    fake_gpu_mem_mb: float = 0.0


def load_data(cfg: Config):
    import torch

    from hpsearch.trainers import _loop

    x, y = torch.zeros(64, 8), torch.zeros(64, dtype=torch.long)
    return _loop.Data(x, y, x, y, classes=4)


def make_model(cfg: Config, data):
    from torch import nn

    return nn.Sequential(nn.Linear(8, cfg.width), nn.Linear(cfg.width, cfg.width),
                         nn.Linear(cfg.width, data.classes))


def train(cfg: Config, report) -> dict:
    import ray

    ctx = ray.get_runtime_context()
    share = ctx.get_assigned_resources().get("GPU", 0.0)
    start = time.time()
    row = {}
    for epoch in range(1, cfg.epochs + 1):
        time.sleep(cfg.sleep_s)
        row = {"epoch": epoch, "val_metric": cfg.width / 1e4, "train_loss": 1.0,
               "val_loss": 1.0, "gap": 0.0, "epoch_time_s": cfg.sleep_s,
               "assigned_gpu": share, "t_start": start, "t_end": time.time(),
               "node_id": ctx.get_node_id(),
               "gpu_mem_mb": cfg.fake_gpu_mem_mb or None,
               "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
               "status": "completed" if epoch == cfg.epochs else "running"}
        report(row)
    return row
