"""The trainer contract, written down: what a trainer module provides and what hpsearch
checks once, when the trainer is resolved (`hpsearch.trainers.get`)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Protocol, runtime_checkable

from hpsearch.errors import UserError

__all__ = ["TrainerModule", "Checkpointer", "Report", "check_module"]

Report = Callable[[dict], Any]


@runtime_checkable
class Checkpointer(Protocol):
    """Where a trainer saves and restores its state (Ray Tune checkpoints in a search).

    `load()` returns the last saved state or None (start fresh); `save(state)` keeps a dict
    of tensors and plain values, which goes out with the next `report` call. States are
    read back with `torch.load(weights_only=True)`: no pickled objects.
    """

    def load(self) -> dict | None: ...

    def save(self, state: dict) -> None: ...


class TrainerModule(Protocol):
    """A trainer is a module (or any object) with these attributes.

    Attributes:
        Config: a dataclass whose every field has a default (optional: without one, `train`
            gets a plain dict of the space's and `--set` values). Its fields are the names the
            spaces search and `--set` fixes (one name everywhere: Optuna parameter = Config
            field = Tune config key = DataFrame column).
        METRIC: what `val_metric` measures, e.g. "accuracy" or "perplexity" (optional;
            default "metric").
        MODE: "max" or "min": the direction of `val_metric` (optional; default "max").
        train: `train(cfg, report, checkpointer=None) -> dict`. Calls `report(row)` once per
            epoch with a dict holding at least `epoch` and `val_metric` (the DESIGN.md
            schema: train_loss, val_loss, train_metric, gap, epoch_time_s, time_total_s,
            gpu_mem_mb, status), and returns the last row. The `checkpointer` parameter is
            optional: a function that declares it gets one (see `Checkpointer`) and can
            resume a trial after a crash. A function that declares a `test` parameter gets
            `test=True` from `hpsearch train` and `export --confirm-seeds` (never from a
            search): it then adds `test_metric` (and `test_loss`) on its held-out test data
            to the last row.
    """

    Config: type
    METRIC: str
    MODE: str

    def train(self, cfg: Any, report: Report, checkpointer: Checkpointer | None = None
              ) -> dict: ...


@dataclasses.dataclass
class _NoConfig:
    """Stands in for a module without Config: its train function gets a plain dict."""


def check_module(name: str, module: Any, fn: Callable
                 ) -> tuple[type | None, str, str, bool, bool]:
    """Check a trainer module against `TrainerModule`.

    Args:
        name: how the user named it (for messages).
        module: the module holding Config/METRIC/MODE.
        fn: its train function.

    Returns:
        (Config class or None: a plain dict config, metric name, mode, whether `fn` takes a
        checkpointer, whether it takes `test`).

    Raises:
        UserError: one line naming what is missing or wrong.
    """
    cfg_cls = getattr(module, "Config", None)
    where = getattr(module, "__name__", name)
    if cfg_cls is not None and not dataclasses.is_dataclass(cfg_cls):
        raise UserError(f"trainer {name!r}: {where}.Config must be a dataclass")
    missing = [f.name for f in dataclasses.fields(cfg_cls or _NoConfig)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise UserError(f"trainer {name!r}: Config fields need defaults: {', '.join(missing)}")
    mode = getattr(module, "MODE", "max")
    if mode not in ("min", "max"):
        raise UserError(f"trainer {name!r}: MODE must be 'min' or 'max', got {mode!r}")
    metric = getattr(module, "METRIC", "metric")
    if not callable(fn):
        raise UserError(f"trainer {name!r}: train is not a function")
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    positional = [p for p in params.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    if params and len(positional) < 2 and not any(p.kind == p.VAR_POSITIONAL
                                                  for p in positional):
        raise UserError(f"trainer {name!r}: the train function must take (cfg, report), "
                        f"it takes ({', '.join(params)})")
    return cfg_cls, str(metric), mode, "checkpointer" in params, "test" in params
