"""Analysis at scale: load + summarise + sensitivity + importance + overfitting for
10,000 synthetic trials x 50 epochs. Target: under 10 s.

    python benchmarks/analysis_scale.py [--trials 10000] [--epochs 50]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from hpsearch.analysis import importance, overfitting, sensitivity, summary
from hpsearch.rundir import summarize_trials


def synthetic(n_trials: int, n_epochs: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lr = 10 ** rng.uniform(-4, -1, n_trials)
    beta1 = rng.uniform(0.5, 0.99, n_trials)
    bs = rng.choice([8, 16, 32, 64], n_trials)
    opt = rng.choice(["sgd", "adam"], n_trials)
    e = np.arange(1, n_epochs + 1)
    base = 0.9 - (np.log10(lr) + 2.5) ** 2 * 0.05
    train = 1 / np.outer(np.ones(n_trials), e) + rng.normal(0, 0.01, (n_trials, n_epochs))
    val = train + np.outer(rng.uniform(0, 0.01, n_trials), e)
    metric = np.clip(base[:, None] - val * 0.1, 0, 1)
    df = pd.DataFrame({
        "trial_id": np.repeat([f"t{i:05d}" for i in range(n_trials)], n_epochs),
        "epoch": np.tile(e, n_trials), "train_loss": train.ravel(), "val_loss": val.ravel(),
        "gap": (val - train).ravel(), "train_metric": metric.ravel(),
        "val_metric": metric.ravel(), "epoch_time_s": 1.0,
        "time_total_s": np.tile(e, n_trials).astype(float), "gpu_mem_mb": np.nan,
        "gpu_mem_device_mb": np.nan, "error": None,
        "status": np.where(np.tile(e, n_trials) == n_epochs, "completed", "running"),
        "lr": np.repeat(lr, n_epochs), "beta1": np.repeat(beta1, n_epochs),
        "batch_size": np.repeat(bs, n_epochs), "optimizer": np.repeat(opt, n_epochs)})
    return df


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--json")
    args = ap.parse_args()
    epochs = synthetic(args.trials, args.epochs)
    params = ["lr", "beta1", "batch_size", "optimizer"]
    timings = {}
    t = time.perf_counter()
    trials = summarize_trials(epochs, params, "max")
    timings["summarize_trials"] = time.perf_counter() - t
    t = time.perf_counter()
    for x, y in sensitivity.pairs(params):
        sensitivity.compute_sensitivity(trials, x, y)
    timings["sensitivity (6 pairs)"] = time.perf_counter() - t
    t = time.perf_counter()
    importance.compute_importance(trials, params)
    timings["importance (fANOVA 300 + PED-ANOVA 2000 sampled)"] = time.perf_counter() - t
    t = time.perf_counter()
    overfitting.compute_overfitting(epochs, params)
    timings["overfitting"] = time.perf_counter() - t
    t = time.perf_counter()
    summary.compute_summary(trials, "mlp")
    timings["summary"] = time.perf_counter() - t
    total = sum(timings.values())
    print(f"analysis of {args.trials} trials x {args.epochs} epochs "
          f"({len(epochs):,} rows)")
    for k, v in timings.items():
        print(f"  {k:34} {v:7.2f} s")
    print(f"  {'total':34} {total:7.2f} s   target < 10 s: {'met' if total < 10 else 'MISSED'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**timings, "total": total}, f, indent=2)


if __name__ == "__main__":
    main()
