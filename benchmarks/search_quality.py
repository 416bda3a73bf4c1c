"""Search quality at an equal epoch budget: hpsearch's default against random sampling,
Ray Tune's and Optuna's own multi-fidelity searches, and (from `benchmarks.field_baselines`,
run in `.venv-field`) Syne Tune's BOHB / MOBSTER / Hyper-Tune and DEHB.

Every hpsearch method runs the real path (trainer plugin -> Ray Tune -> hpsearch's searcher
and scheduler -> Optuna storage), with `--budget-epochs` = budget x epochs per trial.

    python -m benchmarks.search_quality [--landscapes cross nocross ...] [--seeds 0 1 2 3 4]
        [--concurrency 2 8] [--budget 18.5] [--methods ...] [--field field.json ...]
        [--json runs.json] [--merge benchmarks/results_search_quality.json]

(`--methods` with no names runs nothing: it prints, and merges, the `--field` runs only.)
Prints, per landscape and concurrency, the median regret (and the 25-75% range over seeds)
at 1/4, 1/2 and all of the budget, and each method's ratio to random+ASHA, plain Optuna
TPE+Hyperband and random+FIFO at the full budget.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from benchmarks import quality_common as qc

HPSEARCH = {  # name -> (sampler, scheduler)
    "hpsearch": ("tpe", "hyperband"),
    "optuna-tpe+asha (v0.2 default)": ("optuna-tpe", "asha"),
    "random+asha": ("random", "asha"),
    "random+fifo": ("random", "fifo"),
    # ablations (--methods): one half of the default each
    "tpe+asha": ("tpe", "asha"),
    "random+hyperband": ("random", "hyperband"),
}
DEFAULT_METHODS = ("hpsearch", "optuna-tpe+asha (v0.2 default)", "random+asha", "random+fifo")
PEERS = ("optuna tpe+hyperband", "tune optuna+asha")


def _trace_from_dirs(run_dir: Path, metric: str = "val_metric") -> list:
    rows = []
    for f in run_dir.glob("*/result.json"):
        params = json.loads((f.parent / "params.json").read_text())
        for line in f.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if isinstance(r.get("epoch"), int) and "t_wall" in r:
                    rows.append((r["t_wall"], f.parent.name, r["epoch"], r.get(metric), params))
    rows.sort(key=lambda x: (x[0], x[2]))
    return [(t, e, v, p) for _, t, e, v, p in rows]


def run_hpsearch(method: str, name: str, seed: int, conc: int, budget: int, tmp: str) -> list:
    from hpsearch.config import ResourcesConfig, SchedulerConfig, SearchConfig
    from hpsearch.search import run_search

    sampler, scheduler = HPSEARCH[method]
    s = qc.spec(name, seed)
    cfg = SearchConfig(
        trainer=s["trainer"], space=s["space"], run_dir=f"{tmp}/{abs(hash(method))}-{name}-{seed}",
        samples=budget, max_epochs=s["max_epochs"], seed=seed, sampler=sampler,
        scheduler=SchedulerConfig(kind=scheduler), fixed=s["fixed"], budget_epochs=budget,
        resources=ResourcesConfig(max_concurrent=conc))
    run_search(cfg, stream=None)
    return _trace_from_dirs(Path(cfg.run_dir))


def _space_fn(name: str, seed: int):
    from hpsearch import spaces

    return spaces.get(qc.spec(name, seed)["space"]).fn


def run_optuna(name: str, seed: int, conc: int, budget: int) -> list:
    """Plain Optuna in-process: TPE + HyperbandPruner, `conc` threads, no Ray."""
    import optuna

    s = qc.spec(name, seed)
    space_fn, plugin, top = _space_fn(name, seed), qc.plugin(name), s["max_epochs"]
    trace, lock = [], threading.Lock()

    def objective(trial):
        cfg = qc.trainer_config(name, seed, space_fn(trial))
        last = [math.nan]

        def report(val_metric, **_):
            epoch = len(last)
            with lock:
                trace.append((trial.number, epoch, val_metric, dict(trial.params)))
            last.append(val_metric)
            if math.isfinite(val_metric):
                trial.report(val_metric, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        plugin.train(cfg, report)
        return last[-1] if math.isfinite(last[-1]) else float("nan")

    def stop(study, _):
        if len(trace) >= budget:
            study.stop()

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=top,
                                              reduction_factor=3))
    study.optimize(objective, n_trials=budget, n_jobs=conc, callbacks=[stop],
                   catch=(ValueError,))
    return trace


def _tune_trainable(config, name=None, seed=None):
    from ray import tune

    cfg = qc.trainer_config(name, seed, dict(config))
    epoch = iter(range(1, cfg.epochs + 1))
    qc.plugin(name).train(cfg, lambda val_metric, t_wall, **_: tune.report(
        {"score": val_metric if math.isfinite(val_metric) else -1.0, "t_wall": t_wall,
         "epoch": next(epoch)}))


def run_tune(name: str, seed: int, conc: int, budget: int, tmp: str) -> list:
    """Ray Tune's documented pairing with its defaults: OptunaSearch (TPE) + ASHAScheduler
    (grace 1, reduction 4)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from hpsearch.search.schedulers import EpochBudget

    s = qc.spec(name, seed)
    tuner = tune.Tuner(
        tune.with_parameters(_tune_trainable, name=name, seed=seed),
        tune_config=tune.TuneConfig(
            metric="score", mode="max", num_samples=budget, max_concurrent_trials=conc,
            search_alg=OptunaSearch(space=_space_fn(name, seed), metric="score", mode="max",
                                    seed=seed),
            scheduler=ASHAScheduler(max_t=s["max_epochs"]), reuse_actors=True),
        run_config=tune.RunConfig(storage_path=tmp, name=f"tune-{name}-{seed}", verbose=0,
                                  stop=EpochBudget(tmp, budget)))
    rows = []
    for r in tuner.fit():
        df = r.metrics_dataframe
        for _, row in df.iterrows():
            rows.append((row["t_wall"], r.metrics["trial_id"], int(row["training_iteration"]),
                         row["score"], r.config))
    rows.sort(key=lambda x: (x[0], x[2]))
    return [(t, e, v, p) for _, t, e, v, p in rows]


def summarize(rows: list[dict], budget_of: dict) -> list[str]:
    out = []
    keys = sorted({(r["landscape"], r["concurrency"]) for r in rows})
    for land, conc in keys:
        sub = [r for r in rows if r["landscape"] == land and r["concurrency"] == conc]
        methods = list(dict.fromkeys(r["method"] for r in sub))
        budget = budget_of[land]
        out.append(f"\n### {land}, {conc} concurrent trials, budget {budget} epochs "
                   f"(median regret over {len({r['seed'] for r in sub})} seeds, [25%, 75%])")
        out.append("| method | 1/4 budget | 1/2 budget | full budget | vs random+asha | "
                   "vs optuna tpe+hb | vs random+fifo |")
        out.append("|---|---|---|---|---|---|---|")
        med = {m: statistics.median(qc.regret_at(r["curve"], budget) for r in sub
                                    if r["method"] == m) for m in methods}
        for m in methods:
            cells = []
            for frac in (0.25, 0.5, 1.0):
                vals = [qc.regret_at(r["curve"], int(budget * frac))
                        for r in sub if r["method"] == m]
                q = statistics.quantiles(vals, n=4) if len(vals) > 1 else [vals[0]] * 3
                cells.append(f"{statistics.median(vals):.4f} [{q[0]:.3f}, {q[2]:.3f}]")
            # A run that stopped before the budget is compared at fewer epochs: say so.
            short = sum(1 for r in sub if r["method"] == m
                        and (r["curve"][-1][0] if r["curve"] else 0) < budget)
            name = f"{m} ({short} run(s) short of the budget)" if short else m
            out.append(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(
                f"{med[m] / med[b]:.2f}" if med.get(b) else "-"
                for b in ("random+asha", "optuna tpe+hyperband", "random+fifo")) + " |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--landscapes", nargs="+", default=qc.landscape_names())
    ap.add_argument("--methods", nargs="*", default=[*DEFAULT_METHODS, *PEERS])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[2])
    ap.add_argument("--budget", type=float, default=18.5, help="in full trainings")
    ap.add_argument("--field", nargs="+", default=[],
                    help="JSON files written by benchmarks.field_baselines to add")
    ap.add_argument("--json", help="write every regret curve here")
    ap.add_argument("--merge", help="merge these runs, compacted, into a results file such "
                    "as benchmarks/results_search_quality.json (same landscape, seed, "
                    "concurrency and method replaced)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from hpsearch.search import cluster

    lands = [n for n in args.landscapes
             if not n.startswith("lcbench-") or qc.lcbench.available()]
    if len(lands) < len(args.landscapes):
        print("lcbench skipped: no surrogate data (see benchmarks/lcbench.py)")
    budget_of = {n: int(args.budget * qc.spec(n, 0)["max_epochs"]) for n in lands}
    rows = []
    for conc in args.concurrency if args.methods else []:  # no methods: only --field rows
        temp_dir = cluster.connect(num_cpus=conc)
        with tempfile.TemporaryDirectory() as tmp:
            for land in lands:
                for seed in args.seeds:
                    for m in args.methods:
                        t0 = time.time()
                        if m in HPSEARCH:
                            trace = run_hpsearch(m, land, seed, conc, budget_of[land], tmp)
                        elif m == "optuna tpe+hyperband":
                            trace = run_optuna(land, seed, conc, budget_of[land])
                        else:
                            trace = run_tune(land, seed, conc, budget_of[land], tmp)
                        curve = qc.regret_curve(land, seed, trace, budget_of[land])
                        rows.append({"landscape": land, "seed": seed, "concurrency": conc,
                                     "method": m, "curve": curve, "wall_s": time.time() - t0})
                        print(f"{land} conc={conc} seed={seed} {m}: regret "
                              f"{qc.regret_at(curve, budget_of[land]):.4f} "
                              f"({len(trace)} epochs, {time.time() - t0:.0f} s)", flush=True)
        cluster.shutdown(temp_dir)
    for f in args.field:  # merged with --merge too
        rows += [r for r in json.loads(Path(f).read_text())
                 if r["landscape"] in lands and r["seed"] in args.seeds]
    print("\n".join(summarize(rows, budget_of)))
    if args.json:
        qc.save(Path(args.json), rows)
    if args.merge:
        print(f"{args.merge}: {qc.merge_into(Path(args.merge), rows, budget_of)} runs")


if __name__ == "__main__":
    main()
