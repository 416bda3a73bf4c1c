"""Trainer registry. A trainer is a module with `Config` (dataclass), `METRIC`, `MODE` and
`train(cfg, report, checkpointer=None) -> dict` (see `base.TrainerModule`);
`package.module:function` names a user one."""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from hpsearch.errors import UserError
from hpsearch.trainers.base import Checkpointer, TrainerModule, check_module

__all__ = ["TRAINERS", "Trainer", "get", "Checkpointer", "TrainConfig", "TrainerModule",
           "check_runnable", "add_import_path"]

# Built-in trainers by name -> module, imported when first resolved: a Ray worker running a
# user trainer never imports torch for hpsearch's sake (it cost each worker ~3 s).
TRAINERS: dict[str, str] = {"mlp": "hpsearch.trainers.mlp", "lm": "hpsearch.trainers.lm",
                            "vit": "hpsearch.trainers.vit"}


def __getattr__(name: str):
    if name == "TrainConfig":  # re-exported lazily for the same reason
        from hpsearch.trainers.settings import TrainConfig

        return TrainConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Trainer:
    """A resolved, checked trainer: its name, Config class, train function and direction."""

    name: str
    config_cls: type | None  # None: the config is a plain dict
    train_fn: Callable[..., dict]
    metric: str  # what val_metric measures, e.g. "accuracy" or "perplexity"
    mode: str  # "max" or "min" for val_metric
    takes_checkpointer: bool = False
    takes_test: bool = False  # its train function evaluates a held-out test split on request
    module: ModuleType | None = None  # where load_data/make_model/LOSS live, for estimates

    def make_config(self, values: dict[str, Any], where: str = "") -> Any:
        """Build a Config from a dict, rejecting unknown keys and invalid values (a trainer
        without Config gets the dict itself)."""
        if self.config_cls is None:
            return dict(values)
        known = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(values) - known)
        prefix = f"{where}: " if where else ""
        if unknown:
            raise UserError(f"{prefix}trainer {self.name!r} has no setting(s) "
                            f"{', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        try:
            return self.config_cls(**values)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{prefix}trainer {self.name!r}: {exc}") from None

    def has_field(self, name: str) -> bool:
        """Whether its configs take `name` (a plain-dict config takes anything)."""
        return self.config_cls is None or name in {f.name for f in
                                                   dataclasses.fields(self.config_cls)}

    def train(self, cfg: Any, report: Callable[[dict], Any],
              checkpointer: Checkpointer | None = None, test: bool = False) -> dict:
        """Run the trainer; the checkpointer and `test` go only to a function that declares
        them (`test=True`: add held-out test metrics to the last row; never in a search)."""
        kwargs: dict[str, Any] = {}
        if self.takes_checkpointer:
            kwargs["checkpointer"] = checkpointer
        if test and self.takes_test:
            kwargs["test"] = True
        return self.train_fn(cfg, report, **kwargs)


def add_import_path(path: str) -> None:
    """Make user trainer modules under `path` importable here and in the Ray workers this
    process starts (they inherit PYTHONPATH)."""
    if path not in sys.path:
        sys.path.insert(0, path)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if path not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([path, *parts])


def _import_user(mod_name: str) -> ModuleType:
    # Like `python -m`: a module in the current directory is importable.
    add_import_path(os.getcwd())
    try:
        return importlib.import_module(mod_name)
    except ImportError as exc:
        raise UserError(f"cannot import trainer module {mod_name!r}: {exc}") from None
    except SyntaxError as exc:
        raise UserError(f"trainer module {mod_name!r} has a syntax error: "
                        f"{exc.filename}:{exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # the module's own top-level code failed
        raise UserError(f"importing trainer module {mod_name!r} failed: "
                        f"{type(exc).__name__}: {exc}") from None


def get(name: str) -> Trainer:
    """Resolve a registry key (`mlp`, `lm`, `vit`) or a user trainer `package.module:function`,
    checking it against the contract once (`base.check_module`).

    Raises:
        UserError: unknown key, unimportable module, or a module without the contract.
    """
    if not isinstance(name, str) or not name:
        raise UserError(f"trainer must be a name, got {name!r}")
    if ":" in name:
        mod_name, _, fn_name = name.partition(":")
        module = _import_user(mod_name)
        fn = getattr(module, fn_name, None)
        if not callable(fn):
            raise UserError(f"trainer {name!r}: {mod_name} has no function {fn_name!r}")
    elif name in TRAINERS:
        module = importlib.import_module(TRAINERS[name])
        fn = module.train
    else:
        raise UserError(f"unknown trainer {name!r}; valid: {', '.join(sorted(TRAINERS))} "
                        "or package.module:function")
    cfg_cls, metric, mode, takes, takes_test = check_module(name, module, fn)
    return Trainer(name, cfg_cls, fn, metric, mode, takes, module=module, takes_test=takes_test)


def check_runnable(cfg: Any, local: bool = True) -> None:
    """Before any training starts: the config's data set is installed and, when it trains
    in this process (`local`), the device it names exists.

    Raises:
        UserError: one line naming the fix.
    """
    from hpsearch.trainers import _device, data

    if isinstance(getattr(cfg, "data", None), str):
        data.check_available(cfg.data)
    if local and isinstance(getattr(cfg, "device", None), str):
        try:
            _device.check_device(cfg.device)
        except ValueError as exc:
            raise UserError(str(exc)) from None
