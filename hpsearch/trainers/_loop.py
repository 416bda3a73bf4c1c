"""The epoch loop every built-in trainer shares: optimizers, batching, metrics, divergence,
wall-clock, GPU memory and checkpoints. Trainers supply the model, the data and a loss."""

from __future__ import annotations

import logging
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from hpsearch.trainers._device import device_memory_mb, resolve_device
from hpsearch.trainers.base import Checkpointer, Report
from hpsearch.trainers.settings import TrainConfig

logger = logging.getLogger(__name__)

# loss_fn(model, x, y, count) -> (mean loss, number of correct predictions if count else None)
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, bool],
                  "tuple[torch.Tensor, torch.Tensor | None]"]
@dataclass
class Data:
    """In-memory tensors; they are moved to the device once, so batching is plain indexing."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    classes: int = 0  # output size: classes, or the vocabulary for a language model
    # The held-out test split: evaluated once, after the last epoch, only when asked
    # (`hpsearch train`, `export --confirm-seeds`); a search never sees it.
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices and embeddings only: biases and norm gains (1-D
    parameters) are not decayed, the usual convention (nanoGPT, timm)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def weight_decay_of(cfg: TrainConfig) -> float:
    """The decay a config trains with (None: 0.01 for AdamW, 0 otherwise)."""
    if cfg.weight_decay is not None:
        return cfg.weight_decay
    return 0.01 if cfg.optimizer == "adamw" else 0.0


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Map the shared optimizer hyperparameters onto a torch optimizer for `model`."""
    wd = weight_decay_of(cfg)
    params = param_groups(model, wd)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, weight_decay=wd)
    if cfg.optimizer == "momentum":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=wd)
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=wd)


def _inject_fault(spec: str, epoch: int) -> None:
    kind, _, at = spec.partition("@")
    if not spec or int(at or 1) != epoch:
        return
    if kind == "oom":
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected by fault=oom)")
    if kind == "exit":  # a script's sys.exit (argparse on a bad flag, say) inside train
        sys.exit(3)
    raise RuntimeError(f"injected failure at epoch {epoch} (fault={spec})")


# Train accuracy is counted on every COUNT_EVERY-th training batch: a running estimate at
# 1/8 of the cost of counting every step.
COUNT_EVERY = 8


def _run_epoch(cfg, model, opt, data, loss_fn, gen, autocast):
    """One pass over shuffled training data.

    Returns:
        (mean train loss, running train accuracy or None, diverged).
    """
    model.train()
    n = data.x_train.shape[0]
    perm = torch.randperm(n, generator=gen).to(data.x_train.device)
    losses, sizes, correct, counted = [], [], [], 0
    for step, start in enumerate(range(0, n, cfg.batch_size)):
        idx = perm[start:start + cfg.batch_size]
        count = step % COUNT_EVERY == 0
        with autocast():
            loss, n_correct = loss_fn(model, data.x_train[idx], data.y_train[idx], count)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        # Keeping the detached loss launches no kernel; summing happens once per epoch.
        losses.append(loss.detach())
        sizes.append(len(idx))
        if n_correct is not None:
            correct.append(n_correct)
            counted += len(idx)
        # Checking for NaN/inf forces a device sync; every 32 steps keeps it cheap on GPU.
        if step % 32 == 31 and not torch.isfinite(losses[-1]):
            return math.nan, None, True
    weights = torch.tensor(sizes, dtype=torch.float32, device=data.x_train.device)
    mean = float((torch.stack(losses).float() * weights).sum().item() / n)
    accuracy = float(torch.stack(correct).sum().item()) / counted if counted else None
    return mean, accuracy, not (math.isfinite(mean) and mean <= cfg.max_loss)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
             batch_size: int, autocast=None) -> tuple[float, float | None]:
    """Mean loss and accuracy (None when the loss gives no correct count) over (x, y)."""
    model.eval()
    total, correct, has_correct = 0.0, 0.0, False
    for start in range(0, x.shape[0], batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        with (autocast or nullcontext)():
            loss, n_correct = loss_fn(model, xb, yb, True)
        total += loss.float().item() * xb.shape[0]
        if n_correct is not None:
            correct += float(n_correct)
            has_correct = True
    return total / x.shape[0], (correct / x.shape[0] if has_correct else None)


def _metric(kind: str, loss: float, accuracy: float | None) -> float:
    if kind == "perplexity":
        return math.exp(loss) if loss < 700 else math.inf  # exp overflows past ~709
    return accuracy if accuracy is not None else math.nan


def fit(cfg: TrainConfig, model: nn.Module, data: Data, loss_fn: LossFn, metric: str,
        report: Report, checkpointer: Checkpointer | None = None,
        device: torch.device | None = None, test: bool = False) -> dict:
    """Train `model` for `cfg.epochs`, calling `report` once per epoch with the metrics schema.

    Args:
        cfg: shared hyperparameters (optimizer, lr, batch size, epochs, seed, ...).
        model: the network, already built with `torch.manual_seed(cfg.seed)`.
        data: train/val tensors (moved to the device here).
        loss_fn: `(model, x, y) -> (mean loss, n_correct | None)`.
        metric: "accuracy" (higher is better) or "perplexity" (lower is better).
        report: called with one dict per epoch (`ray.tune.report` wrapper or `list.append`).
        checkpointer: optional state store, so a restarted trial resumes at its last epoch.
        device: where to train; default from `cfg.device`.
        test: after the last epoch, evaluate the held-out test split (`data.x_test`) and add
            `test_loss` and `test_metric` to the last row. Never during a search.

    Returns:
        The last reported row. Its `status` is "completed" or "diverged".
    """
    threads = torch.get_num_threads()
    if cfg.threads and cfg.threads != threads:  # for the training only (an API caller's
        torch.set_num_threads(cfg.threads)       # process keeps its own count)
    try:
        return _fit(cfg, model, data, loss_fn, metric, report, checkpointer, device, test)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _fit(cfg, model, data, loss_fn, metric, report, checkpointer, device, test) -> dict:
    device = device or resolve_device(cfg.device)
    model.to(device)
    x_test, y_test = data.x_test, data.y_test
    data = Data(*(t.to(device) for t in (data.x_train, data.y_train, data.x_val, data.y_val)),
                data.classes)
    opt = build_optimizer(cfg, model)
    n_params = count_params(model)
    gen = torch.Generator().manual_seed(cfg.seed)
    use_amp = cfg.amp == "bf16" and device.type == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else nullcontext()

    start_epoch, time_total = 1, 0.0
    state = checkpointer.load() if checkpointer else None
    if state:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, time_total = state["epoch"] + 1, state["time_total_s"]
        logger.info("resumed from checkpoint at epoch %d", state["epoch"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    eval_bs = max(cfg.batch_size, 256)
    row: dict = {}
    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        _inject_fault(cfg.fault, epoch)
        train_loss, train_acc, diverged = _run_epoch(cfg, model, opt, data, loss_fn, gen,
                                                     autocast)
        val_loss, val_acc = math.nan, None
        if not diverged:
            val_loss, val_acc = evaluate(model, data.x_val, data.y_val, loss_fn, eval_bs, autocast)
            diverged = not (math.isfinite(val_loss) and val_loss <= cfg.max_loss)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_time = time.perf_counter() - t0
        time_total += epoch_time
        status = "diverged" if diverged else ("completed" if epoch == cfg.epochs else "running")
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "train_metric": math.nan if diverged else _metric(metric, train_loss, train_acc),
            "val_metric": math.nan if diverged else _metric(metric, val_loss, val_acc),
            "gap": val_loss - train_loss,
            "epoch_time_s": epoch_time,
            "time_total_s": time_total,
            "gpu_mem_mb": (torch.cuda.max_memory_allocated(device) / 2**20
                           if device.type == "cuda" else None),
            "gpu_mem_device_mb": device_memory_mb(device),
            "status": status,
            "n_params": n_params,
            "cpu_threads": torch.get_num_threads(),
        }
        if test and epoch == cfg.epochs and not diverged:
            row.update(_test_metrics(model, x_test, y_test, loss_fn, metric, eval_bs,
                                     autocast, device))
        if checkpointer and not diverged:
            checkpointer.save({
                "epoch": epoch, "time_total_s": time_total, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(),
            })
        report(row)
        if diverged:
            break
    return row


def _test_metrics(model, x, y, loss_fn, metric, batch_size, autocast, device) -> dict:
    """test_loss and test_metric on the held-out split (NaN when the data set has none)."""
    if x is None or y is None or len(x) == 0:
        return {"test_loss": math.nan, "test_metric": math.nan}
    loss, acc = evaluate(model, x.to(device), y.to(device), loss_fn, batch_size, autocast)
    return {"test_loss": loss, "test_metric": _metric(metric, loss, acc)}


def fit_module(module, cfg: TrainConfig, report: Report,
               checkpointer: Checkpointer | None = None, test: bool = False) -> dict:
    """Train a built-in trainer module: its `load_data`, `make_model`, `LOSS` and `METRIC`
    through `fit` (the same three the memory estimate uses); `test`: see `fit`."""
    data = module.load_data(cfg)
    return fit(cfg, module.make_model(cfg, data), data, module.LOSS, module.METRIC, report,
               checkpointer, test=test)


def count_params(model: nn.Module) -> int:
    """Trainable parameter count, reported with every epoch row (`n_params`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
