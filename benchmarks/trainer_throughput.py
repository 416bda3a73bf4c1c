"""Training throughput (samples/s) of each hpsearch trainer vs a bare PyTorch loop on the same
model, data, batch size and device. Target: hpsearch >= 0.95x the bare loop.

    python benchmarks/trainer_throughput.py [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from hpsearch import trainers
from hpsearch.trainers import _loop, nets

CASES = {
    "mlp (fashion10k, depth 2, width 128, bs 64)": ("mlp", {"batch_size": 64}),
    "vit (digits, 4 layers, dim 64, bs 64)": ("vit", {"batch_size": 64}),
    "lm lstm (shakespeare 250k chars, 2x128, ctx 64)": ("lm", {"model": "lstm", "batch_size": 32}),
    "lm gpt (shakespeare 250k chars, 2x128, ctx 64)": ("lm", {"model": "gpt", "batch_size": 32}),
}


def bare_loop(model, data: _loop.Data, cfg, lm: bool) -> list[float]:
    """The loop a user would write: shuffle, forward, loss, backward, step; then evaluate."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(0)
    times = []
    for _ in range(cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(len(data.x_train), generator=g)
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            out = model(data.x_train[idx])
            y = data.y_train[idx]
            loss = (F.cross_entropy(out.flatten(0, 1), y.flatten()) if lm
                    else F.cross_entropy(out, y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            for i in range(0, len(data.x_val), max(cfg.batch_size, 256)):
                model(data.x_val[i:i + max(cfg.batch_size, 256)])
        times.append(time.perf_counter() - t0)
    return times


def measure(name: str, overrides: dict, rounds: int) -> dict:
    """Alternate rounds of hpsearch's loop and the bare loop (2 epochs each, the second timed)
    so both see the same machine load; keep each side's fastest epoch."""
    trainer = trainers.get(name)
    cfg = trainer.make_config({**overrides, "epochs": 2, "device": "cpu"})
    module = trainers.get(name).module
    loss = nets.lm_loss if name == "lm" else nets.classification_loss
    model, data = module.build(cfg)
    model2, data2 = module.build(cfg)
    ours, bare = [], []
    t0 = time.perf_counter()
    for r in range(rounds):
        rows: list[dict] = []
        if r % 2:  # alternate which side runs first: order effects cancel out
            bare.append(bare_loop(model2, data2, cfg, name == "lm")[-1])
        _loop.fit(cfg, model, data, loss, module.METRIC, rows.append)
        ours.append(rows[-1]["epoch_time_s"])
        if not r % 2:
            bare.append(bare_loop(model2, data2, cfg, name == "lm")[-1])
    n = len(data.x_train)
    return {"n_train": n, "hpsearch_samples_s": n / min(ours), "bare_samples_s": n / min(bare),
            "wall_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    results = {}
    print(f"{'case':52} {'hpsearch/s':>11} {'bare/s':>9} {'ratio':>6}")
    for label, (name, overrides) in CASES.items():
        r = measure(name, overrides, args.rounds)
        r["ratio"] = r["hpsearch_samples_s"] / r["bare_samples_s"]
        results[label] = r
        print(f"{label:52} {r['hpsearch_samples_s']:11.0f} {r['bare_samples_s']:9.0f} "
              f"{r['ratio']:6.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
