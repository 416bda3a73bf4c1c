"""Orchestration overhead of a full hpsearch search (Ray Tune + hpsearch's searcher +
per-trial reporting) on trials of known length. Efficiency = sum of trial time / (wall x
slots). Targets: >= 90% at 100 x 1 s trials counting Ray start-up, >= 95% at 1,000; with
--peers, hpsearch's wall <= plain Ray Tune + OptunaSearch's on the same trials.

    python -m benchmarks.overhead --trials 100 1000 --epoch-s 1.0 [--json out.json]
    python -m benchmarks.overhead --peers --trials 60 --epoch-s 0.3 1.0 --rounds 3

--peers runs, in one process on one local Ray session and in alternating rounds, the same
sleep trials through (a) `hpsearch.search.run_search` (default sampler, FIFO), (b) plain
`tune.Tuner` + `OptunaSearch` (TPE, sqlite storage) with `reuse_actors=True` and
`max_concurrent_trials` = slots, and (c) plain Optuna `study.optimize(n_jobs=slots)` on
sqlite (threads, no Ray), and prints each one's median wall and hpsearch's ratio to Tune.
Without --peers, one hpsearch search per N with Ray's start-up counted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import tempfile
import time

from hpsearch.config import ResourcesConfig, SchedulerConfig, SearchConfig
from hpsearch.search import cluster, run_search


def _hpsearch(n: int, epoch_s: float, slots: int, sampler: str = "tpe") -> float:
    with tempfile.TemporaryDirectory() as d:
        cfg = SearchConfig(trainer="benchmarks.sleep_trainer:train",
                           space="benchmarks/sleep_space.yaml", run_dir=f"{d}/run", samples=n,
                           max_epochs=1, sampler=sampler,
                           scheduler=SchedulerConfig(kind="fifo"),
                           resources=ResourcesConfig(max_concurrent=slots),
                           fixed={"epoch_s": epoch_s})
        t0 = time.perf_counter()
        run = run_search(cfg, stream=None)
        wall = time.perf_counter() - t0
        assert (run.trials["status"] == "completed").sum() == n
    return wall


def _sleep_trainable(config: dict) -> None:
    from ray import tune

    time.sleep(config["epoch_s"])
    tune.report({"epoch": 1, "score": config["x"]})


def _tune(n: int, epoch_s: float, slots: int) -> float:
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as d:
        storage = optuna.storages.RDBStorage(f"sqlite:///{d}/optuna.db")
        search = OptunaSearch({"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
                              metric="score", mode="max", storage=storage,
                              study_name=f"peer-{time.time_ns()}")
        tuner = tune.Tuner(
            tune.with_parameters(_sleep_trainable),
            param_space={"epoch_s": epoch_s},
            tune_config=tune.TuneConfig(metric="score", mode="max", search_alg=search,
                                        num_samples=n, max_concurrent_trials=slots,
                                        reuse_actors=True),
            run_config=tune.RunConfig(storage_path=d, name="peer", verbose=0))
        t0 = time.perf_counter()
        grid = tuner.fit()
        wall = time.perf_counter() - t0
        assert len(grid) == n
    return wall


def _optuna(n: int, epoch_s: float, slots: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        time.sleep(epoch_s)
        return x

    with tempfile.TemporaryDirectory() as d:
        study = optuna.create_study(storage=f"sqlite:///{d}/optuna.db", direction="maximize")
        t0 = time.perf_counter()
        study.optimize(objective, n_trials=n, n_jobs=slots)
        return time.perf_counter() - t0


def peers(n: int, epoch_s: float, slots: int, rounds: int) -> dict:
    """Median wall of each driver over `rounds` alternating rounds (Ray already up)."""
    walls: dict[str, list[float]] = {"hpsearch": [], "tune": [], "optuna": []}
    for _ in range(rounds):
        walls["hpsearch"].append(_hpsearch(n, epoch_s, slots))
        walls["tune"].append(_tune(n, epoch_s, slots))
        walls["optuna"].append(_optuna(n, epoch_s, slots))
    busy = n * epoch_s
    med = {k: statistics.median(v) for k, v in walls.items()}
    return {"trials": n, "epoch_s": epoch_s, "slots": slots, "rounds": rounds, "walls": walls,
            **{f"{k}_wall_s": v for k, v in med.items()},
            **{f"{k}_efficiency": busy / (v * slots) for k, v in med.items()},
            "tune_over_hpsearch": med["tune"] / med["hpsearch"]}


@contextlib.contextmanager
def _timed(marks: dict):
    """Wrap the runner's Ray start, Tuner build and Ray shutdown to time them (marks: name ->
    (start, end), perf_counter)."""
    from hpsearch.search import runner

    saved = {"connect": (runner.cluster, "connect"), "shutdown": (runner.cluster, "shutdown"),
             "build_tuner": (runner, "build_tuner")}
    originals = {k: getattr(obj, attr) for k, (obj, attr) in saved.items()}

    def wrap(name):
        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return originals[name](*a, **kw)
            finally:
                marks[name] = (t, time.perf_counter())
        return timed
    for name, (obj, attr) in saved.items():
        setattr(obj, attr, wrap(name))
    try:
        yield
    finally:
        for name, (obj, attr) in saved.items():
            setattr(obj, attr, originals[name])


def measure(n: int, epoch_s: float, epochs: int, slots: int, sampler: str) -> dict:
    """One hpsearch search from a cold start: Ray's start-up and shutdown are counted, and
    timed apart with the Tuner's build, the wait for the first trial, the gap between trials
    and what follows the last one."""
    marks: dict = {}
    with tempfile.TemporaryDirectory() as d:
        cfg = SearchConfig(trainer="benchmarks.sleep_trainer:train",
                           space="benchmarks/sleep_space.yaml", run_dir=f"{d}/run", samples=n,
                           max_epochs=epochs, sampler=sampler,
                           scheduler=SchedulerConfig(kind="fifo"),
                           resources=ResourcesConfig(max_concurrent=slots),
                           fixed={"epoch_s": epoch_s})
        t0, u0 = time.perf_counter(), time.time()
        with _timed(marks):
            run = run_search(cfg, stream=None, num_cpus=slots)
        wall = time.perf_counter() - t0
    busy = n * epochs * epoch_s
    ends = run.epochs["wall_end"] - u0  # epoch ends, seconds after the start
    first_start, last_end = float(ends.min()) - epoch_s, float(ends.max())
    phases = {"ray_start_s": marks["connect"][1] - marks["connect"][0],
              "build_tuner_s": marks["build_tuner"][1] - marks["build_tuner"][0],
              "to_first_trial_s": first_start - (marks["build_tuner"][1] - t0),
              "gap_per_trial_s": ((last_end - first_start) * slots - busy) / n,
              "after_last_trial_s": (marks["shutdown"][0] - t0) - last_end,
              "ray_shutdown_s": marks["shutdown"][1] - marks["shutdown"][0]}
    return {"trials": n, "epoch_s": epoch_s, "epochs": epochs, "slots": slots,
            "sampler": sampler, "wall_s": wall, "completed": int((run.trials["status"] ==
                                                                   "completed").sum()),
            "efficiency": busy / (wall * slots),
            "driver_s_per_trial": (wall * slots - busy) / n, "ray_start_counted": True,
            "phases": phases}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, nargs="+", default=[100])
    ap.add_argument("--epoch-s", type=float, nargs="+", default=[1.0])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--sampler", default="tpe", choices=["tpe", "random"])
    ap.add_argument("--peers", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if args.peers:
        temp = cluster.connect(num_cpus=args.slots)
        try:
            rows = [peers(n, s, args.slots, args.rounds) for n in args.trials
                    for s in args.epoch_s]
        finally:
            cluster.shutdown(temp)
        print(f"{'trials':>6} {'trial_s':>7} {'hpsearch s':>10} {'tune s':>8} "
              f"{'optuna s':>8} {'tune/hpsearch':>13} {'hpsearch eff':>12}")
        for r in rows:
            print(f"{r['trials']:6d} {r['epoch_s']:7.2f} {r['hpsearch_wall_s']:10.1f} "
                  f"{r['tune_wall_s']:8.1f} {r['optuna_wall_s']:8.1f} "
                  f"{r['tune_over_hpsearch']:13.2f} {r['hpsearch_efficiency']:12.1%}")
    else:
        rows = [measure(n, s, args.epochs, args.slots, args.sampler)
                for n in args.trials for s in args.epoch_s]
        print(f"{'trials':>7} {'epoch_s':>7} {'slots':>5} {'wall_s':>8} {'efficiency':>10} "
              f"{'driver s/trial':>14}")
        for r in rows:
            print(f"{r['trials']:7d} {r['epoch_s']:7.2f} {r['slots']:5d} {r['wall_s']:8.1f} "
                  f"{r['efficiency']:10.1%} {r['driver_s_per_trial']:14.3f}")
        print("\nwhere the overhead goes (s; the gap is per trial, per slot):")
        for r in rows:
            print(f"{r['trials']:7d} trials: " + ", ".join(
                f"{k.removesuffix('_s').replace('_', ' ')} {v:.3f}"
                for k, v in r["phases"].items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
