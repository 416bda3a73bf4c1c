"""Cost of the fake-tensor memory estimate that sizes GPU shares: seconds per distinct config
shape (the driver pays it once per shape, before the trial starts) and the estimate itself.

    python -m benchmarks.memory_estimate [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

from hpsearch import trainers
from hpsearch.trainers import memory

CONFIGS = [
    ("mlp", {"data": "digits", "depth": 2, "width": 128}),
    ("mlp", {"data": "digits", "depth": 6, "width": 1024, "batch_size": 256}),
    ("vit", {"data": "digits", "layers": 2}),
    ("vit", {"data": "digits", "layers": 6}),
    ("vit", {"data": "digits", "layers": 12, "dim": 192, "heads": 6, "batch_size": 256}),
    ("lm", {"model": "lstm", "layers": 2}),
    ("lm", {"model": "gpt", "layers": 4}),
    ("lm", {"model": "gpt", "layers": 8, "dim": 512, "heads": 8, "context": 256,
            "batch_size": 64}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    for name, values in CONFIGS:
        trainer = trainers.get(name)
        cfg = trainer.make_config(values)
        trainer.module.load_data(cfg)  # data loading is not the estimate's cost
        t0 = time.perf_counter()
        est = memory.estimate(trainer.module, cfg)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        memory.estimate(trainer.module, trainer.make_config({**values, "lr": 0.1}))
        cached = time.perf_counter() - t0
        rows.append({"trainer": name, "config": values, "estimate_s": cold, "cached_s": cached,
                     **vars(est)})
    print(f"{'trainer':7} {'config':58} {'est s':>6} {'cached s':>9} {'total MB':>9} "
          f"{'act MB':>8}")
    for r in rows:
        cfg = " ".join(f"{k}={v}" for k, v in r["config"].items() if k != "data")
        print(f"{r['trainer']:7} {cfg:58} {r['estimate_s']:6.2f} {r['cached_s']:9.5f} "
              f"{r['total_mb']:9.1f} {r['activations_mb']:8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
