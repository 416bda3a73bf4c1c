"""Orchestration overhead of a full hpsearch search (Ray Tune + OptunaSearch + per-trial
reporting) on trials of known length. Efficiency = sum of trial time / (wall x slots).
Target: >= 90% for 1 s epochs.

    python -m benchmarks.overhead --trials 100 1000 --epoch-s 1.0 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time

from hpsearch.config import ResourcesConfig, SchedulerConfig, SearchConfig
from hpsearch.search import cluster, run_search


def measure(n: int, epoch_s: float, epochs: int, slots: int, sampler: str) -> dict:
    with tempfile.TemporaryDirectory() as d:
        cfg = SearchConfig(trainer="benchmarks.sleep_trainer:train",
                           space="benchmarks/sleep_space.yaml", run_dir=f"{d}/run", samples=n,
                           max_epochs=epochs, sampler=sampler,
                           scheduler=SchedulerConfig(kind="fifo"),
                           resources=ResourcesConfig(max_concurrent=slots),
                           fixed={"epoch_s": epoch_s})
        t0 = time.perf_counter()
        run = run_search(cfg, stream="stderr")
        wall = time.perf_counter() - t0
    busy = n * epochs * epoch_s
    return {"trials": n, "epoch_s": epoch_s, "epochs": epochs, "slots": slots,
            "sampler": sampler, "wall_s": wall, "completed": int((run.trials["status"] ==
                                                                   "completed").sum()),
            "efficiency": busy / (wall * slots),
            "driver_s_per_trial": (wall * slots - busy) / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, nargs="+", default=[100])
    ap.add_argument("--epoch-s", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--sampler", default="tpe", choices=["tpe", "random"])
    ap.add_argument("--json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    cluster.connect(num_cpus=args.slots)
    rows = [measure(n, args.epoch_s, args.epochs, args.slots, args.sampler)
            for n in args.trials]
    print(f"{'trials':>7} {'epoch_s':>7} {'slots':>5} {'wall_s':>8} {'efficiency':>10} "
          f"{'driver s/trial':>14}")
    for r in rows:
        print(f"{r['trials']:7d} {r['epoch_s']:7.2f} {r['slots']:5d} {r['wall_s']:8.1f} "
              f"{r['efficiency']:10.1%} {r['driver_s_per_trial']:14.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
