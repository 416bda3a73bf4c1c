"""Trainer registry. A trainer is a module with `Config` (dataclass) and
`train(cfg, report, checkpointer=None) -> dict`; `package.module:function` names a user one."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from hpsearch.errors import UserError
from hpsearch.trainers import lm, mlp, vit
from hpsearch.trainers._loop import Checkpointer, TrainConfig

__all__ = ["TRAINERS", "Trainer", "get", "Checkpointer", "TrainConfig"]

TRAINERS: dict[str, ModuleType] = {"mlp": mlp, "lm": lm, "vit": vit}


@dataclass(frozen=True)
class Trainer:
    """A resolved trainer: its name, Config class, train function and optimisation direction."""

    name: str
    config_cls: type
    train: Callable[..., dict]
    metric: str  # what val_metric measures, e.g. "accuracy" or "perplexity"
    mode: str  # "max" or "min" for val_metric
    module: ModuleType | None = None  # where load_data/make_model/LOSS live, for estimates

    def make_config(self, values: dict[str, Any]) -> Any:
        """Build a Config from a dict, rejecting unknown keys and invalid values."""
        known = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"trainer {self.name!r} has no setting(s) {', '.join(unknown)}; "
                            f"valid: {', '.join(sorted(known))}")
        try:
            return self.config_cls(**values)
        except (TypeError, ValueError) as exc:
            raise UserError(f"trainer {self.name!r}: {exc}") from None

    def accepts_checkpointer(self) -> bool:
        return "checkpointer" in inspect.signature(self.train).parameters


def get(name: str) -> Trainer:
    """Resolve a registry key (`mlp`, `lm`, `vit`) or a user trainer `package.module:function`.

    A user trainer's module must define `Config` (a dataclass with defaults); it may define
    `MODE` ("max" default) and `METRIC`.

    Raises:
        UserError: unknown key, unimportable module, or a module without the contract.
    """
    if ":" in name:
        mod_name, _, fn_name = name.partition(":")
        try:
            module = importlib.import_module(mod_name)
        except ImportError as exc:
            raise UserError(f"cannot import trainer module {mod_name!r}: {exc}") from None
        fn = getattr(module, fn_name, None)
        if not callable(fn):
            raise UserError(f"trainer {name!r}: {mod_name} has no function {fn_name!r}")
    elif name in TRAINERS:
        module, fn = TRAINERS[name], TRAINERS[name].train
    else:
        raise UserError(f"unknown trainer {name!r}; valid: {', '.join(sorted(TRAINERS))} "
                        "or package.module:function")
    cfg_cls = getattr(module, "Config", None)
    if cfg_cls is None or not dataclasses.is_dataclass(cfg_cls):
        raise UserError(f"trainer {name!r}: module {module.__name__} defines no Config dataclass")
    mode = getattr(module, "MODE", "max")
    if mode not in ("min", "max"):
        raise UserError(f"trainer {name!r}: MODE must be 'min' or 'max', got {mode!r}")
    return Trainer(name, cfg_cls, fn, getattr(module, "METRIC", "metric"), mode, module)
