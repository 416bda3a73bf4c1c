"""The settings every built-in trainer shares (`TrainConfig`), torch-free: a user trainer's
Config can extend it without its Ray worker importing torch (~1.4 CPU-s) for hpsearch's sake,
and a driver can check a config before any training."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["OPTIMIZERS", "TrainConfig"]

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters and settings shared by every built-in trainer."""

    optimizer: str = "adamw"  # sgd | momentum | adam | adamw
    lr: float = 1e-3
    beta1: float = 0.9  # used by adam/adamw only
    beta2: float = 0.999  # used by adam/adamw only
    momentum: float = 0.9  # used by optimizer=momentum only (sgd means plain SGD)
    # None: the optimizer's usual default, 0.01 for AdamW (PyTorch's; decoupled decay is what
    # sets AdamW apart from Adam) and 0 for the others.
    weight_decay: float | None = None
    batch_size: int = 32
    epochs: int = 10
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "none"  # none | bf16 (autocast on CUDA only; ignored on CPU)
    # Fault injection for tests of the search's error handling: "error@EPOCH" raises a
    # RuntimeError, "oom@EPOCH" a torch.cuda.OutOfMemoryError, "exit@EPOCH" calls
    # sys.exit(3), at the start of that epoch.
    fault: str = ""
    # A loss this large is divergence even while still finite (ReLU nets at a huge lr reach
    # 1e9 without a NaN); cross-entropy of any sane model stays far below it.
    max_loss: float = 1e4
    # CPU threads for torch's ops; 0 leaves the process's count (a trial has one per CPU it
    # holds). The count changes float rounding, so `export` records the trial's and
    # `hpsearch train` of the exported config reproduces its metrics exactly.
    threads: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("beta1", "beta2", "momentum"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not self.max_loss > 0:
            raise ValueError(f"max_loss must be > 0, got {self.max_loss}")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError("batch_size and epochs must be >= 1")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: as the process has), got {self.threads}")
        if self.amp not in ("none", "bf16"):
            raise ValueError(f"amp must be 'none' or 'bf16', got {self.amp!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.fault and not re.fullmatch(r"(error|oom|exit)@\d+", self.fault):
            raise ValueError(f"fault must be error@EPOCH, oom@EPOCH or exit@EPOCH, got "
                             f"{self.fault!r}")
