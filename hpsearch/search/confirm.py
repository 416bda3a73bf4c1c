"""Confirm exported configs on fresh seeds: each config re-trained `seeds` times, in
parallel Ray tasks (orchestration, so it lives beside the search, not in the analysis)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import ray

from hpsearch import trainers
from hpsearch.trainers.saving import ModelKeeper

__all__ = ["confirm_seeds", "CONFIRM_SEED_BASE"]

# Confirmation seeds start here: never the search's seeds, so the check is independent.
CONFIRM_SEED_BASE = 1000


def _train_once(trainer_name: str, values: dict, save_to: str | None = None,
                metric: str = "val_metric") -> dict:
    """One re-training, as `hpsearch train` runs it (the trainer's `report` takes a dict or
    keywords); a trainer that raises makes this re-training `error`, with its own line."""
    from hpsearch.trainers.contract import train_checked, user_frame

    trainer = trainers.get(trainer_name)
    keeper = ModelKeeper.for_trainer(trainer, save_to)
    cfg = trainer.make_config(values)
    try:
        last = train_checked(trainer, cfg, lambda row: None, metric, keeper)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 (the trainer's own failure)
        return {"status": "error", "error": user_frame(exc)}
    if keeper:
        keeper.write()
    return last


def confirm_seeds(docs: list[dict], seeds: int, cpus_per_task: float = 1.0,
                  gpus_per_task: float = 0.0, save_models: str | None = None,
                  metric: str = "val_metric") -> pd.DataFrame:
    """Re-train each exported config on `seeds` fresh seeds. Ray must be initialised.

    Args:
        docs: exported documents (`analysis.export.export_best_configs`).
        seeds: re-trainings per config.
        cpus_per_task, gpus_per_task: resources of one re-training.
        save_models: a directory: each re-training's weights go to `RANK-seedSEED.pt`.
        metric: the run's search metric (a column of its own when not val_metric).

    Returns:
        One row per (rank, seed): rank, trial_id, seed, val_metric, `metric`, test_metric
        (held-out data; NaN when the trainer has no test split), status, error (the
        trainer's own line when it raised).
    """
    task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task)(_train_once)
    jobs = []
    for doc in docs:
        for i in range(seeds):
            seed = CONFIRM_SEED_BASE + i
            values = {**doc["config"], "seed": seed}
            path = (str(Path(save_models).absolute() / f"{doc['rank']}-seed{seed}.pt")
                    if save_models else None)
            jobs.append(((doc["rank"], doc["trial_id"], seed),
                         task.remote(doc["trainer"], values, path, metric)))
    rows = []
    for (rank, tid, seed), ref in jobs:
        last = ray.get(ref)
        rows.append({"rank": rank, "trial_id": tid, "seed": seed,
                     "val_metric": last.get("val_metric"), metric: last.get(metric),
                     "test_metric": last.get("test_metric", float("nan")),
                     "status": last.get("status"), "error": last.get("error")})
    return pd.DataFrame(rows)
