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


def _train_once(trainer_name: str, values: dict, save_to: str | None = None) -> dict:
    trainer = trainers.get(trainer_name)
    rows: list[dict] = []
    keeper = ModelKeeper.for_trainer(trainer, save_to)
    trainer.train(trainer.make_config(values), rows.append, keeper, test=True)
    if keeper:
        keeper.write()
    return rows[-1] if rows else {"status": "error", "val_metric": None}


def confirm_seeds(docs: list[dict], seeds: int, cpus_per_task: float = 1.0,
                  gpus_per_task: float = 0.0, save_models: str | None = None) -> pd.DataFrame:
    """Re-train each exported config on `seeds` fresh seeds. Ray must be initialised.

    Args:
        docs: exported documents (`analysis.export.export_best_configs`).
        seeds: re-trainings per config.
        cpus_per_task, gpus_per_task: resources of one re-training.
        save_models: a directory: each re-training's weights go to `RANK-seedSEED.pt`.

    Returns:
        One row per (rank, seed): rank, trial_id, seed, val_metric, test_metric (held-out
        data; NaN when the trainer has no test split), status.
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
                         task.remote(doc["trainer"], values, path)))
    rows = []
    for (rank, tid, seed), ref in jobs:
        last = ray.get(ref)
        rows.append({"rank": rank, "trial_id": tid, "seed": seed,
                     "val_metric": last.get("val_metric"),
                     "test_metric": last.get("test_metric", float("nan")),
                     "status": last.get("status")})
    return pd.DataFrame(rows)
