"""A Ray-free simulation of hpsearch's search loop (its searcher and scheduler classes, fed
epoch by epoch with `concurrency` trials in flight), for fast design iterations on the
landscapes of `benchmarks.search_quality`. Figures quoted in benchmarks/README.md come from
search_quality (the real Ray Tune path), not from this.

    python -m benchmarks.search_sim [--landscapes ...] [--seeds 0..9] [--variant k=v ...]
        [--jobs N] [--json out.json] [--paired other.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import types

import optuna

from benchmarks import quality_common as qc
from hpsearch import spaces
from hpsearch.search.schedulers import AdaptiveHyperband
from hpsearch.search.searcher import StudySearcher


def simulate(name: str, seed: int, conc: int, budget: int, opts: dict) -> list:
    s = qc.spec(name, seed)
    top, plugin = s["max_epochs"], qc.plugin(name)
    space = spaces.get(s["space"]).fn
    sampler = opts.get("sampler", "tpe")
    searcher = StudySearcher(
        space, "score", opts.get("mode", "max"),
        optuna.samplers.TPESampler(seed=seed) if sampler == "optuna-tpe"
        else optuna.samplers.RandomSampler(seed=seed),
        storage=None, study_name="sim", equal_fidelity=sampler == "tpe", seed=seed,
        min_obs=int(opts["min_obs"]) if "min_obs" in opts else None,
        random_fraction=float(opts.get("rand", 0.2)),
        # endgame=0: also start trials the budget cannot cover (the old behaviour)
        budget_epochs=budget if opts.get("endgame", "1") == "1" else None, max_epochs=top)
    # sched=asha|fifo: one bracket, ASHA's (grace 1) or none.
    brackets = {"asha": "asha", "fifo": "none"}.get(opts.get("sched"), "hyperband")
    sched = AdaptiveHyperband("score", opts.get("mode", "max"), top, 1, 3.0, seed=seed,
                              adaptive=opts.get("agree", "1") == "1", brackets=brackets)
    trace, running, n, now = [], {}, 0, 0.0

    def start() -> bool:
        nonlocal n
        tid = f"t{n}"
        cfg = searcher.suggest(tid)
        if cfg is None:  # the budget's end: the slot waits for the running trials
            return False
        n += 1
        rows = []
        c = qc.trainer_config(name, seed, cfg, epoch_s=0.0)
        plugin.train(c, lambda val_metric, **_: rows.append(val_metric))
        sched.on_trial_add(None, types.SimpleNamespace(trial_id=tid))
        running[tid] = (cfg, rows, 0, now)
        return True

    while len(trace) < budget:
        while len(running) < conc and start():
            pass
        # Every epoch takes one time unit in its own slot: the next report is the earliest
        # epoch end (a trial's start + its epochs), as on a real cluster; picking the trial
        # furthest behind instead starved long trials whenever new ones started.
        tid = min(running, key=lambda t: (running[t][3] + running[t][2] + 1, t))
        cfg, rows, k, began = running[tid]
        now = began + k + 1
        v = rows[k]
        epoch = k + 1
        trace.append((tid, epoch, v, cfg))
        # mode=min: the searcher and scheduler minimise 1 - score, as for a loss; the trace
        # (and so the regret) must come out the same as maximising the score.
        told = 1.0 - v if opts.get("mode") == "min" else v
        res = {"score": told, "epoch": epoch, "status": "running"}
        if v != v:
            res["status"] = "diverged"
            searcher.on_trial_complete(tid, res)
            del running[tid]
            continue
        seen = res  # what the searcher and the scheduler are told
        if opts.get("oracle") in ("1", "2"):  # upper bounds: the true final score instead
            seen = {**res, "score": qc.true_final(name, seed, cfg)}
        searcher.on_trial_result(tid, seen if opts.get("oracle") == "2" else res)
        d = sched.on_trial_result(None, types.SimpleNamespace(trial_id=tid), seen)
        if epoch >= len(rows) or d == "STOP":
            if epoch >= top:
                res["status"] = "completed"
            searcher.on_trial_complete(tid, res)
            del running[tid]
        else:
            running[tid] = (cfg, rows, k + 1, began)
    return trace


def _one(job: tuple) -> float:
    land, seed, conc, budget, opts = job
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return qc.regret_at(qc.regret_curve(land, seed, simulate(land, seed, conc, budget, opts),
                                        budget), budget)


def paired(mine: dict, other: dict) -> list[str]:
    """Per landscape: medians and paired better-worse of `mine` against `other` (both
    {landscape: {seed: regret}}), over the seeds both have. Medians over 16 instances moved
    by up to 30% between variants whose paired counts stayed near even (session 25)."""
    out = []
    for land, regrets in mine.items():
        seeds = [s for s in regrets if s in other.get(land, {})]
        if not seeds:
            continue
        a, b = [regrets[s] for s in seeds], [other[land][s] for s in seeds]
        better = sum(x < y - 1e-9 for x, y in zip(a, b))
        worse = sum(x > y + 1e-9 for x, y in zip(a, b))
        out.append(f"{land}: {statistics.median(a):.4f} vs {statistics.median(b):.4f}, "
                   f"better on {better}, worse on {worse} of {len(seeds)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--landscapes", nargs="+", default=list(qc.SYNTHETIC))
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--mean", action="store_true", help="also print the mean regret")
    ap.add_argument("--json", help="write every seed's regret per landscape here")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--budget", type=float, default=18.5)
    ap.add_argument("--jobs", type=int, default=1, help="instances simulated at once")
    ap.add_argument("--paired", help="a --json file of another variant: print paired "
                    "better-worse counts against it")
    ap.add_argument("--variant", nargs="*", default=[], help="key=value: sampler "
                    "(tpe|optuna-tpe|random), min_obs, rand (random fraction), agree (0: "
                    "Hyperband's fixed bracket weights), sched (asha|fifo: one bracket), "
                    "oracle (1: the scheduler sees each trial's true final score at every "
                    "epoch; 2: the searcher too), endgame (0: start trials the budget cannot "
                    "cover), mode (min: minimise 1 - score; the regrets "
                    "must equal the default's)")
    args = ap.parse_args()
    opts = dict(kv.split("=", 1) for kv in args.variant)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    out, per_seed = [], {}
    pool = multiprocessing.Pool(args.jobs) if args.jobs > 1 else None
    for land in args.landscapes:
        budget = int(args.budget * qc.spec(land, 0)["max_epochs"])
        jobs = [(land, seed, args.concurrency, budget, opts) for seed in args.seeds]
        vals = pool.map(_one, jobs) if pool else [_one(j) for j in jobs]
        per_seed[land] = dict(zip(args.seeds, vals))
        out.append(f"{land}={statistics.median(vals):.4f}"
                   + (f"/{statistics.mean(vals):.4f}" if args.mean else ""))
    print(" ".join(args.variant) or "default", " ".join(out), flush=True)
    if pool:
        pool.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"variant": opts, "regret": per_seed}, f)
    if args.paired:
        with open(args.paired) as f:
            other = {land: {int(s): v for s, v in r.items()}
                     for land, r in json.load(f)["regret"].items()}
        print("\n".join(paired(per_seed, other)))


if __name__ == "__main__":
    main()
