"""Estimate a config's peak GPU memory without a GPU: the model and its optimizer, in the state
after a first step, run one training step and an evaluation batch on fake tensors under torch's
MemTracker; the data the loop keeps on the device is added. It predicts
`torch.cuda.max_memory_allocated`."""

from __future__ import annotations

import dataclasses
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only where an estimate is made: `hpsearch run` imports this module
    import torch

    from hpsearch.trainers import _loop

__all__ = ["MemoryEstimate", "estimate", "shape_key", "supports"]

_MB = 2**20
# Fields that change no tensor's size: configs differing only in these share one estimate.
_NEUTRAL = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "momentum": 0.9, "weight_decay": 0.0,
            "seed": 0, "epochs": 1, "fault": "", "max_loss": 1e4}


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak memory of one trial's training loop, in MiB (what nvidia-smi calls MB)."""

    total_mb: float  # data + peak of the tracked step
    data_mb: float  # train/val tensors and the shuffle permutation, resident all run long
    params_mb: float  # at the moment of peak (the same for every category below)
    grads_mb: float
    optimizer_mb: float
    activations_mb: float  # activations and temporaries


MARGIN = 0.10  # allocator fragmentation and kernels' scratch space the fake step cannot see


def per_trial_mb(estimate: float, overhead_mb: float) -> float:
    """What one trial process holds on its GPU: the estimate with MARGIN, plus overhead."""
    return estimate * (1 + MARGIN) + overhead_mb


def supports(module: ModuleType) -> bool:
    """A trainer module can be estimated when it splits data, model and loss
    (`load_data(cfg)`, `make_model(cfg, data)`, `LOSS`), as the built-in ones do."""
    return all(hasattr(module, n) for n in ("load_data", "make_model", "LOSS"))


def estimate(module: ModuleType, cfg: _loop.TrainConfig) -> MemoryEstimate:
    """Peak GPU memory of training `cfg` with trainer `module` (see `supports`).

    Costs about 0.1-1 s of CPU on first sight of a shape; configs that differ only in
    lr, betas, momentum, weight decay, seed or epochs reuse the cached answer.

    Raises:
        ValueError: the module does not support estimates.
    """
    if not supports(module):
        raise ValueError(f"trainer module {module.__name__} has no load_data/make_model/LOSS")
    return _estimate(module, _neutral(cfg))


def _neutral(cfg):
    return dataclasses.replace(cfg, **{k: v for k, v in _NEUTRAL.items() if hasattr(cfg, k)})


def shape_key(cfg) -> str:
    """One string per memory shape: configs that differ only in fields that change no
    tensor's size (lr, betas, ...) share it. Used to reuse measured memory."""
    values = dataclasses.asdict(_neutral(cfg))
    return ",".join(f"{k}={values[k]!r}" for k in sorted(values))


def _nbytes(t: torch.Tensor) -> int:
    # Views are materialised on the device by `.to()`, so numel counts, not the storage.
    return t.numel() * t.element_size()


@lru_cache(maxsize=512)
def _estimate(module: ModuleType, cfg) -> MemoryEstimate:
    # Real data first, outside fake mode: the loaders' caches must never hold fake tensors.
    data = module.load_data(cfg)
    n_train = data.x_train.shape[0]
    data_bytes = sum(_nbytes(t) for t in (data.x_train, data.y_train, data.x_val, data.y_val))
    data_bytes += n_train * 8  # the int64 shuffle permutation
    peak = _tracked_peak(module, cfg, data)
    total = sum(v for k, v in peak.items() if k != "Total")

    def part(name: str) -> float:
        return sum(v for k, v in peak.items() if str(k).endswith(name)) / _MB

    return MemoryEstimate(
        total_mb=(data_bytes + total) / _MB, data_mb=data_bytes / _MB,
        params_mb=part("PARAM") + part("BUFFER"), grads_mb=part("GRAD"),
        optimizer_mb=part("OPT"), activations_mb=part("ACT") + part("TEMP") + part("OTH"))


def _tracked_peak(module: ModuleType, cfg, data: _loop.Data) -> dict:
    """Bytes by category at the peak of a training step (taken from the state after a first
    one) and one evaluation batch."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    from hpsearch.trainers import _loop

    bs = min(cfg.batch_size, data.x_train.shape[0])
    eval_bs = min(max(cfg.batch_size, 256), data.x_val.shape[0])  # as `_loop.fit` evaluates
    use_amp = getattr(cfg, "amp", "none") == "bf16"

    def autocast():
        # CPU autocast stands in for CUDA's: both keep bf16 copies of matmul inputs.
        return torch.autocast("cpu", dtype=torch.bfloat16) if use_amp else nullcontext()

    def batch(x: torch.Tensor, y: torch.Tensor, n: int):
        return (torch.empty((n, *x.shape[1:]), dtype=x.dtype),
                torch.zeros((n, *y.shape[1:]), dtype=y.dtype))

    with warnings.catch_warnings(), FakeTensorMode(allow_non_fake_inputs=True):
        warnings.simplefilter("ignore")
        model = module.make_model(cfg, data)
        opt = _loop.build_optimizer(cfg, model)
        # The state after a first step, without running one: gradients exist (the loop frees
        # them only after the next forward) and the optimizer holds its state.
        for p in model.parameters():
            if p.requires_grad:
                p.grad = torch.zeros_like(p)
        opt.step()
        tracker = MemTracker()
        tracker.track_external(model, opt)
        with tracker:
            x, y = batch(data.x_train, data.y_train, bs)
            with autocast():
                loss, _ = module.LOSS(model, x, y, True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tracker.reset_mod_stats()
            model.eval()
            with torch.no_grad(), autocast():
                module.LOSS(model, *batch(data.x_val, data.y_val, eval_bs), True)
        snapshot = tracker.get_tracker_snapshot("peak")
    # One device (the fake CPU one); its categories at the moment of the peak.
    return next(iter(snapshot.values()), {})
