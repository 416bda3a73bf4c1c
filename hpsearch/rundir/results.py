"""Ray Tune's per-trial files (result.json, params.json, error.txt) read into the tidy
per-epoch rows of the DESIGN.md schema."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["SCHEMA", "trial_rows", "read_results", "epoch_rows"]

# Keys Ray Tune adds to every result; not ours to carry into the tidy frame.
_TUNE_KEYS = {"timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id",
              "date", "time_this_iter_s", "time_since_restore", "iterations_since_restore",
              "pid", "config", "should_checkpoint", "time_total_s_tune"}
SCHEMA = ["epoch", "train_loss", "val_loss", "train_metric", "val_metric", "gap",
          "epoch_time_s", "time_total_s", "gpu_mem_mb", "gpu_mem_device_mb", "status", "error"]


def read_results(trial_dir: Path) -> list[dict]:
    """The rows of a trial's result.json (a line a crash cut short is skipped)."""
    rows = []
    result_file = trial_dir / "result.json"
    if not result_file.exists():
        return rows
    for line in result_file.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if isinstance(row, dict):
            rows.append(row)
    return rows


def epoch_rows(trial_dir: Path) -> list[dict]:
    """The rows of a trial's result.json that report an epoch (an int)."""
    return [r for r in read_results(trial_dir) if isinstance(r.get("epoch"), int)]


def _tune_error(trial_dir: Path) -> str | None:
    err = trial_dir / "error.txt"
    if not err.exists():
        return None
    lines = [ln for ln in err.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "error"


def _params(trial_dir: Path, results: list[dict]) -> dict:
    try:
        config = json.loads((trial_dir / "params.json").read_text())
    except (OSError, ValueError):
        config = None
    if isinstance(config, dict):
        return config
    # params.json cut short (a kill while Tune copied it): Tune puts the config in each row.
    return next((r["config"] for r in results if isinstance(r.get("config"), dict)), {})


def trial_rows(trial_dir: Path, finished: bool, config_keys: set,
               tune_statuses: dict[str, str] | None = None) -> list[dict]:
    """The trial's rows; its last row's status says how it ended. `tune_statuses` (trial id
    -> Tune's saved status): a trial Tune has TERMINATED ended as its rows say even with an
    error.txt, which then records a failure Tune recovered from (`--max-failures`) or one
    that came while the scheduler was stopping it; without Tune's word, an error.txt
    beside unfinished rows is the trial's end."""
    results = read_results(trial_dir)
    config = _params(trial_dir, results)
    config_keys.update(config)
    tid = results[0].get("trial_id") if results else trial_dir.name
    by_epoch: dict[int, dict] = {}
    for r in results:
        if isinstance(r.get("epoch"), (int, float)):  # a retried epoch replaces the earlier
            by_epoch[int(r["epoch"])] = r
    rows = []
    for epoch in sorted(by_epoch):
        r = by_epoch[epoch]
        extra = {k: v for k, v in r.items() if k not in _TUNE_KEYS and k not in SCHEMA
                 and k not in config}  # e.g. node_ip, hostname, a user trainer's metrics
        rows.append({"trial_id": tid, **{k: r.get(k) for k in SCHEMA}, **extra, **config})
    error = _tune_error(trial_dir)
    ended = (tune_statuses or {}).get(tid) == "TERMINATED"
    if ended and rows:
        error = None
        finished = True  # (stopped by the scheduler or the budget when its rows stop short)
    if rows:
        last = rows[-1]
        if error and last["status"] not in ("completed", "diverged"):
            last["status"], last["error"] = "error", error
        elif last["status"] == "running" and (finished or error):
            last["status"] = "stopped_early"
    elif error:
        rows.append({"trial_id": tid, "epoch": 0, "status": "error", "error": error, **config})
    return rows
