"""GPU packing: the same small ViT trials searched at 1, 0.5 and 0.25 GPU per trial and with
memory-sized shares (`auto`); prints aggregate training throughput (samples/s over the whole
search) and memory (measured peak vs estimate, NVML device peak, OOM errors).

    python -m benchmarks.gpu_packing --shares 1 0.5 0.25 auto --trials 16 --epochs 3 \\
        [--set data=fashion10k] [--json benchmarks/results_gpu_packing.json]

On a machine without a GPU, `--fake-gpus 1 --gpu-memory-mb 80000` checks the plumbing
(trials then train on CPU, so the throughput says nothing about GPUs).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time

import pandas as pd

from hpsearch import trainers
from hpsearch.config import ResourcesConfig, SchedulerConfig, SearchConfig, parse_literal
from hpsearch.search import cluster, run_search


def _samples_per_epoch(fixed: dict) -> int:
    trainer = trainers.get("vit")
    return int(trainer.module.load_data(trainer.make_config(fixed)).x_train.shape[0])


def measure(share: str, args, fixed: dict) -> dict:
    auto = share == "auto"
    res = ResourcesConfig(cpus_per_trial=args.cpus_per_trial,
                          gpus_per_trial=0.0 if auto else float(share), gpu_auto=auto,
                          memory_packing=auto or args.packing,
                          gpu_memory_mb=args.gpu_memory_mb)
    with tempfile.TemporaryDirectory() as d:
        cfg = SearchConfig(trainer="vit", space="vit_norm_depth", run_dir=f"{d}/run",
                           samples=args.trials, max_epochs=args.epochs, sampler="random",
                           seed=args.seed, scheduler=SchedulerConfig(kind="fifo"),
                           resources=res, fixed=fixed)
        t0 = time.perf_counter()
        run = run_search(cfg, stream="stderr")
        wall = time.perf_counter() - t0
    t, e = run.trials, run.epochs
    trained = int(pd.to_numeric(e["epoch"], errors="coerce").notna().sum())  # epochs reported
    est = pd.to_numeric(t.get("gpu_mem_mb_estimate"), errors="coerce") \
        if "gpu_mem_mb_estimate" in t else pd.Series(dtype=float)
    actual = pd.to_numeric(t["gpu_mem_mb"], errors="coerce")
    ratio = (actual / est).dropna() if len(est) else pd.Series(dtype=float)
    errors = t["error"].fillna("").astype(str) if "error" in t else pd.Series(dtype=str)
    return {
        "share": share, "trials": args.trials, "epochs": args.epochs, "wall_s": wall,
        "samples_per_s": trained * _samples_per_epoch(fixed) / wall,
        "completed": int((t["status"] == "completed").sum()),
        "oom_errors": int(errors.str.contains("OOM").sum()),
        "max_gpu_mem_mb": float(actual.max()) if actual.notna().any() else None,
        "max_device_mb": (float(pd.to_numeric(t["gpu_mem_device_mb"], errors="coerce").max())
                          if "gpu_mem_device_mb" in t and t["gpu_mem_device_mb"].notna().any()
                          else None),
        "median_actual_over_estimate": float(ratio.median()) if len(ratio) else None,
        "max_actual_over_estimate": float(ratio.max()) if len(ratio) else None,
        "shares_used": sorted(set(pd.to_numeric(t["gpu_share"], errors="coerce").dropna()))
        if "gpu_share" in t else None,
    }


def _fmt(v, spec: str) -> str:
    width = int(spec.split(".")[0])
    return f"{'-':>{width}}" if v is None else format(v, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shares", nargs="+", default=["1", "0.5", "0.25", "auto"])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0, help="random sampler: same configs per share")
    ap.add_argument("--cpus-per-trial", type=float, default=1.0)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--packing", action="store_true",
                    help="fixed shares as floors with memory packing (default: exact shares)")
    ap.add_argument("--fake-gpus", type=int, help="start Ray with this many fake GPUs")
    ap.add_argument("--gpu-memory-mb", type=float, help="needed with --fake-gpus for auto")
    ap.add_argument("--json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    fixed = {"dim": 64, "heads": 4, **{k: parse_literal(v) for k, v in
                                        (s.split("=", 1) for s in args.sets)}}
    temp = cluster.connect(num_gpus=args.fake_gpus)
    try:
        rows = [measure(s, args, fixed) for s in args.shares]
    finally:  # the private Ray this started, its temp dir included
        cluster.shutdown(temp)
    print(f"{'share':>6} {'trials':>6} {'wall_s':>8} {'samples/s':>10} {'done':>5} {'OOM':>4} "
          f"{'peak MB':>8} {'device MB':>9} {'act/est med':>11} {'act/est max':>11}")
    for r in rows:
        print(f"{r['share']:>6} {r['trials']:6d} {r['wall_s']:8.1f} {r['samples_per_s']:10.0f} "
              f"{r['completed']:5d} {r['oom_errors']:4d} {_fmt(r['max_gpu_mem_mb'], '8.0f')} "
              f"{_fmt(r['max_device_mb'], '9.0f')} "
              f"{_fmt(r['median_actual_over_estimate'], '11.2f')} "
              f"{_fmt(r['max_actual_over_estimate'], '11.2f')}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": os.environ.get("HPSEARCH_BENCH_DEVICE", ""), "rows": rows},
                      f, indent=2)


if __name__ == "__main__":
    main()
