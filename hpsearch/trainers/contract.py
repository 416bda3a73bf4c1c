"""The report side of the trainer contract: what a trainer may send and what hpsearch fills
in, checked at the first epoch, so a mistake stops a search at once with one line that names
the fix instead of failing every trial."""

from __future__ import annotations

import math
import os
import time
import traceback
from typing import Any, Callable

__all__ = ["ContractError", "Reporter", "user_frame"]


def user_frame(exc: BaseException) -> str:
    """`file.py:LINE Type: message` at the deepest frame of the trainer's own code (not
    hpsearch's, Ray's or a library's), so the user sees where their code failed."""
    frames = traceback.extract_tb(exc.__traceback__)
    lib = ("site-packages", "dist-packages", os.sep + "hpsearch" + os.sep, "<frozen")
    own = [f for f in frames if not any(p in f.filename for p in lib)] or frames
    where = f"{os.path.basename(own[-1].filename)}:{own[-1].lineno} " if own else ""
    return f"{where}{type(exc).__name__}: {exc}"


class ContractError(Exception):
    """A trainer broke the contract (see `base.TrainerModule`); the message names the fix."""


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _plain(v: Any) -> Any:
    """A numpy scalar or a one-element tensor/array as the Python number it holds (what
    Ray Tune, the tables and `math.isfinite` take); anything else as it is."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    item = getattr(v, "item", None)
    if callable(item):
        try:
            out = item()
        except (TypeError, ValueError, RuntimeError):  # more than one element
            return v
        return out if isinstance(out, (bool, int, float)) else v
    return v


def epochs_of(cfg: Any) -> int | None:
    """A config's epoch budget (its `epochs`), from a Config or a plain dict, if it has one."""
    return cfg.get("epochs") if isinstance(cfg, dict) else getattr(cfg, "epochs", None)


class Reporter:
    """The `report` a trainer calls: `report(row_dict)` or `report(key=value, ...)`.

    hpsearch fills in what the trainer leaves out: `epoch` (counting calls), `epoch_time_s`
    (time since the previous call), `time_total_s`, `gap` (val_loss - train_loss), `status`
    ("running", or "completed" at the last epoch), and marks a NaN/inf metric `diverged`.

    Args:
        sink: where complete rows go (`ray.tune.report` wrapper, or `list.append`).
        metric: the key the search optimises; the first row must have it.
        epochs: the trial's epoch budget (its Config's `epochs`), if known.
    """

    def __init__(self, sink: Callable[[dict], Any], metric: str = "val_metric",
                 epochs: int | None = None) -> None:
        self.sink, self.metric, self.epochs = sink, metric, epochs
        self.rows = 0
        self.last: dict | None = None
        self._clock = time.perf_counter()
        self._total = 0.0

    def __call__(self, *args: Any, **values: Any) -> None:
        row = args[0] if len(args) == 1 else None
        if len(args) > 1 or (row is not None and not isinstance(row, dict)):
            row = args
            raise ContractError(f"report() takes one dict or keywords, got {len(args)} "
                                "positional value(s): "
                                f"call report({{'{self.metric}': value}}) or "
                                f"report({self.metric}=value)")
        row = {k: _plain(v) for k, v in {**(row or {}), **values}.items()}
        if self.rows == 0 and self.metric not in row:
            got = ", ".join(sorted(row)) or "nothing"
            raise ContractError(f"the first report has no {self.metric!r} (it has {got}): "
                                f"report({self.metric}=...) every epoch, or pass --metric KEY")
        self.rows += 1
        now = time.perf_counter()
        row.setdefault("epoch", self.rows)
        if not _number(row.get("epoch_time_s")):
            row["epoch_time_s"] = now - self._clock
        self._clock = now
        self._total += row["epoch_time_s"]
        if not _number(row.get("time_total_s")):
            row["time_total_s"] = self._total
        if not _number(row.get("gap")) and _number(row.get("train_loss")) \
                and _number(row.get("val_loss")):
            row["gap"] = row["val_loss"] - row["train_loss"]
        if row.get("status") is None:
            last = self.epochs is not None and row["epoch"] >= self.epochs
            row["status"] = "completed" if last else "running"
        value = row.get(self.metric)
        if row["status"] != "error" and not _number(value):
            raise ContractError(f"report({self.metric}=...) must be a number at every epoch, "
                                f"got {value!r} ({type(value).__name__}) at epoch "
                                f"{row['epoch']}: report a float (NaN or inf if it diverged)")
        if row["status"] != "error" and not math.isfinite(value):
            row["status"] = "diverged"  # NaN/inf is divergence
        self.last = row
        self.sink(row)

    def finish(self, returned: Any) -> dict:
        """After `train` returned: check what it returned; a run that ended normally but
        never said so gets a final "completed" row. Returns the last row."""
        if self.last is None:
            raise ContractError("train returned without calling report: call report(...) "
                                "once per epoch")
        if returned is not None and not isinstance(returned, dict):
            raise ContractError("train must return the last row (a dict) or None, got "
                                f"{type(returned).__name__}")
        if self.last.get("status") == "running":
            self.last = {**self.last, "status": "completed"}
            self.sink(self.last)
        return self.last


def train_checked(trainer: Any, cfg: Any, sink: Callable[[dict], Any],
                  metric: str = "val_metric", checkpointer: Any = None) -> dict:
    """One training outside a search (`hpsearch train`, a confirmation re-training): the
    trainer's reports checked and completed by a `Reporter`, the held-out test metrics on
    its last row, which is returned. Raises ContractError, or whatever the trainer raised."""
    reporter = Reporter(sink, metric, epochs_of(cfg))
    return reporter.finish(trainer.train(cfg, reporter, checkpointer, test=True))
