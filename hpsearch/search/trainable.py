"""The Ray Tune function trainable: builds the trainer's Config from the trial config, hands
the trainer a `Reporter` over `tune.report` plus a checkpointer, and turns exceptions into an
`error` row (a contract mistake into one the driver stops the search on)."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
import time
import traceback

from ray import tune

from hpsearch import trainers
from hpsearch.errors import UserError
from hpsearch.rundir.layout import CHECKPOINT_ROW, CHECKPOINT_STATE
from hpsearch.search.processes import WORKER_TMP_ENV
from hpsearch.trainers.contract import ContractError, Reporter, epochs_of, user_frame

logger = logging.getLogger(__name__)


class TuneCheckpointer:
    """Saves trainer state into a Tune checkpoint that travels with the next report."""

    def __init__(self) -> None:
        self.pending: dict | None = None
        self.restored_row: dict | None = None  # the row reported with the restored state

    def load(self) -> dict | None:
        ckpt = tune.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as d:
            if not os.path.exists(os.path.join(d, CHECKPOINT_STATE)):
                return None  # emptied by resume: the checkpoint it named was gone
            row_file = os.path.join(d, CHECKPOINT_ROW)
            if os.path.exists(row_file):
                with open(row_file) as f:
                    self.restored_row = json.load(f)
            # weights_only: a checkpoint is data, never code.
            import torch  # a checkpointing trainer is a torch trainer: already imported

            return torch.load(os.path.join(d, CHECKPOINT_STATE), map_location="cpu",
                              weights_only=True)

    def save(self, state: dict) -> None:
        self.pending = state


def _reporter(metric: str, mode: str, checkpointer: TuneCheckpointer):
    def report(row: dict) -> None:
        row = dict(row)
        # Tune's own clock would count setup too; use the trainer's epoch time.
        row["time_this_iter_s"] = row.get("epoch_time_s")
        # When the epoch ended (unix s): the analysis counts the trials that ran at once.
        row.setdefault("wall_end", time.time())
        value = row.get(metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            # NaN/inf is divergence whatever status the trainer sent; the worst value keeps
            # ASHA's rungs and Optuna's TPE ordered.
            if row.get("status") != "error":
                row["status"] = "diverged"
            row[metric] = -math.inf if mode == "max" else math.inf
        state, checkpointer.pending = checkpointer.pending, None
        try:
            if state is None:
                tune.report(row)
                return
            with tempfile.TemporaryDirectory(dir=_staging_dir()) as d:
                import torch

                torch.save(state, os.path.join(d, CHECKPOINT_STATE))
                with open(os.path.join(d, CHECKPOINT_ROW), "w") as f:
                    json.dump(row, f, default=str)
                tune.report(row, checkpoint=tune.Checkpoint.from_directory(d))
        except SystemExit as exc:  # Ray Tune ending the trial's thread: not the trainer's
            exc.from_tune = True
            raise
    return report


def _staging_dir() -> str | None:
    """Where a checkpoint waits for Tune to copy it: under a private Ray's temp dir (see
    `cluster._worker_tmp`), else the system temp dir."""
    path = os.environ.get(WORKER_TMP_ENV)
    return path if path and os.path.isdir(path) else None


def run_trial(config: dict, trainer_name: str, metric: str, mode: str,
              import_path: str | None = None) -> None:
    """Tune entry point. `config` holds Config fields (searched and fixed); `import_path`
    is where a `module:function` trainer was imported from in the driver."""
    checkpointer = TuneCheckpointer()
    sink = _reporter(metric, mode, checkpointer)
    report = Reporter(sink, metric)
    failure = contract = None
    try:
        if import_path:
            trainers.add_import_path(import_path)
        try:
            trainer = trainers.get(trainer_name)
            cfg = trainer.make_config(dict(config))
        except UserError as exc:  # every trial would fail the same way: stop the search
            raise ContractError(f"in the Ray worker: {exc}") from None
        report.epochs = epochs_of(cfg)
        returned = trainer.train(cfg, report, checkpointer)
        if report.last is None and checkpointer.restored_row is not None:
            # Restored after its last epoch (a driver died before Tune saw the end): the
            # result is the row that went out with that checkpoint.
            report.last = dict(checkpointer.restored_row)
            if report.last.get("status") == "running":
                sink({**report.last, "status": "completed"})
            else:
                sink(report.last)
        else:
            report.finish(returned)
    except ContractError as exc:  # the trainer's mistake: the driver stops the search
        contract = str(exc)
        failure = f"contract: {contract}"
    except SystemExit as exc:  # the trainer's own sys.exit() ends its trial, not the worker
        if getattr(exc, "from_tune", False):
            raise
        failure = f"{user_frame(exc)} (the trainer called sys.exit)"
    except Exception as exc:  # a trainer bug or CUDA OOM ends this trial, not the search
        logger.warning("trial failed: %s", traceback.format_exc(limit=3))
        torch = sys.modules.get("torch")  # a trainer without torch cannot run out of CUDA
        oom = torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)
        failure = f"{'CUDA OOM: ' if oom else ''}{user_frame(exc)}"
    if failure:
        row = {"epoch": (report.last or {}).get("epoch", 0) + 1, "status": "error",
               "error": failure[:500], "epoch_time_s": 0.0, metric: math.nan}
        sink({**row, "contract_error": contract} if contract else row)
