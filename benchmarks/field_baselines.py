"""The field's multi-fidelity methods on the same landscapes, for `benchmarks.search_quality`
to print beside hpsearch: Syne Tune 0.13's BOHB, MOBSTER, Hyper-Tune and DEHB, in Syne Tune's
simulator (one simulated second per epoch, `n_workers` = concurrency), stopped at the same
epoch budget. Runs in its own environment (Syne Tune pins numpy < 2):

    python3 -m venv .venv-field
    .venv-field/bin/pip install "syne-tune[gpsearchers,kde]==0.13.0" onnxruntime scikit-learn
    .venv-field/bin/python -m benchmarks.field_baselines --jobs 2 --json /tmp/field.json
    .venv/bin/python -m benchmarks.search_quality --methods --field /tmp/field.json \
        --merge benchmarks/results_search_quality.json

(scikit-learn: Syne Tune's blackbox module imports it.) Each run is a process of its own;
`--jobs N` runs N at once. `--concurrency 8` runs 8 workers; one run of 499 epochs then takes
50-130 s on one core.

Syne Tune spaces are flat (no conditions): knobs an optimizer does not use are sampled and
ignored by the landscape, as a user of these tools would have to do.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import landscapes
from benchmarks import quality_common as qc

METHODS = ("BOHB", "MOBSTER", "HyperTune", "DEHB")


def _space(name: str, top: int) -> dict:
    from syne_tune.config_space import choice, lograndint, loguniform, randint, uniform

    if name.startswith("lcbench-"):
        return {"batch_size": lograndint(16, 512), "lr": loguniform(1e-4, 0.1),
                "momentum": uniform(0.1, 0.99), "weight_decay": uniform(1e-5, 0.1),
                "num_layers": randint(1, 5), "max_units": lograndint(64, 1024),
                "max_dropout": uniform(0.0, 1.0)}
    return {"optimizer": choice(list(landscapes.OPTIMIZERS)), "lr": loguniform(1e-4, 0.1),
            # beta2 as hpsearch's spaces search it: 1 - beta2 log-uniform (spaces.scales)
            "beta1": uniform(0.5, 0.99), "one_minus_beta2": loguniform(1e-4, 0.1),
            "momentum": uniform(0.5, 0.99), "weight_decay": loguniform(1e-5, 0.1),
            "batch_size": choice([8, 16, 32, 64]), "depth": randint(1, 4)}


def _blackbox(name: str, seed: int):
    from syne_tune.blackbox_repository.blackbox import Blackbox
    from syne_tune.config_space import randint

    s = qc.spec(name, seed)
    top = s["max_epochs"]

    def curve(config: dict) -> np.ndarray:
        rows = []
        qc.plugin(name).train(qc.trainer_config(name, seed, config),
                              lambda val_metric, **_: rows.append(val_metric))
        rows += [math.nan] * (top - len(rows))  # diverged: NaN from there on
        return np.array([[v if math.isfinite(v) else 0.0, float(i + 1)]
                         for i, v in enumerate(rows)])

    class Landscape(Blackbox):
        def __init__(self):
            super().__init__(configuration_space=_space(name, top),
                             fidelity_space={"epoch": randint(1, top)},
                             objectives_names=["accuracy", "elapsed_time"])

        @property
        def fidelity_values(self):
            return np.arange(1, top + 1)

        def _objective_function(self, configuration, fidelity=None, seed=None):
            values = curve(configuration)
            if fidelity is None:
                return values
            return dict(zip(self.objectives_names, values[int(fidelity["epoch"]) - 1]))

    return Landscape()


def _seen_counter():
    """A Syne Tune callback counting the results its scheduler saw (the trace `_results`
    reads back). Syne Tune's own counters (`StoppingCriterion`'s result count, each trial's
    highest epoch) also count the epochs a simulated trial ran past a stop or pause decision
    in the same batch of results, which the scheduler never saw and the trace lacks: runs
    cut by those counters ended short of the budget."""
    from syne_tune.tuner_callback import TunerCallback

    class Seen(TunerCallback):
        n = 0

        def on_trial_result(self, trial, status, result, decision):
            self.n += 1

    return Seen()


def run(method: str, name: str, seed: int, conc: int, budget: int) -> list:
    from syne_tune import Tuner
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.blackbox_repository.simulated_tabular_backend import UserBlackboxBackend
    from syne_tune.optimizer import baselines

    s = qc.spec(name, seed)
    top = s["max_epochs"]
    bb = _blackbox(name, seed)
    backend = UserBlackboxBackend(blackbox=bb, elapsed_time_attr="elapsed_time")
    space = {**bb.configuration_space, "epoch": top}
    kw = dict(metric="accuracy", mode="max", resource_attr="epoch", max_resource_attr="epoch",
              random_seed=seed)
    scheduler = getattr(baselines, method)(space, **kw)
    tmp, seen = tempfile.mkdtemp(), _seen_counter()
    tuner = Tuner(trial_backend=backend, scheduler=scheduler, n_workers=conc, sleep_time=0,
                  stop_criterion=lambda status: seen.n >= budget + conc,
                  callbacks=[SimulatorCallback(), seen], results_update_interval=1e9,
                  save_tuner=False, tuner_name=f"{method.lower()}-{seed}",
                  trial_backend_path=tmp)
    tuner.run()
    return _results(tuner)


def _results(tuner) -> list:
    from syne_tune.experiments import load_experiment

    df = load_experiment(tuner.name).results
    df = df.sort_values(["st_tuner_time", "epoch"])
    keys = [k for k in df.columns if k.startswith("config_")]
    return [(int(r["trial_id"]), int(r["epoch"]), float(r["accuracy"]),
             {k[len("config_"):]: r[k] for k in keys if k != "config_epoch"})
            for _, r in df.iterrows()]


def _job(job: tuple) -> tuple[dict | None, str]:
    """One landscape x concurrency x seed x method: (its row, or None if the method failed,
    and the line that reports it)."""
    land, conc, seed, m, budget = job
    logging.disable(logging.WARNING)
    t0 = time.time()
    try:
        trace = run(m, land, seed, conc, budget)
    except Exception as exc:  # noqa: BLE001  (a method's own failure ends its run, not the sweep)
        # Syne Tune 0.13's DEHB asserts at 8 workers in its simulator ("must not skip rung
        # levels"): the run is reported as failed and left out of the table.
        return None, (f"{land} conc={conc} seed={seed} {m}: FAILED after {time.time() - t0:.0f} "
                      f"s: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    curve = qc.regret_curve(land, seed, trace, budget)
    row = {"landscape": land, "seed": seed, "concurrency": conc, "method": f"syne-tune {m}",
           "curve": curve, "wall_s": time.time() - t0}
    short = f"; SHORT of the budget ({budget})" if len(trace) < budget else ""
    return row, (f"{land} conc={conc} seed={seed} {m}: regret "
                 f"{qc.regret_at(curve, budget):.4f} ({len(trace)} epochs, "
                 f"{time.time() - t0:.0f} s{short})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--landscapes", nargs="+", default=qc.landscape_names())
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[2])
    ap.add_argument("--budget", type=float, default=18.5, help="in full trainings")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once, each in a process of "
                    "its own (Syne Tune keeps state per process)")
    ap.add_argument("--json", required=True, help="written after every run, so that a cut "
                    "sweep keeps the runs that ended")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    jobs = [(land, conc, seed, m, int(args.budget * qc.spec(land, 0)["max_epochs"]))
            for land in args.landscapes
            if not (land.startswith("lcbench-") and not qc.lcbench.available())
            for conc in args.concurrency for seed in args.seeds for m in args.methods]
    rows = []
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(max(1, args.jobs), maxtasksperchild=1) as pool:
        for row, line in pool.imap_unordered(_job, jobs):
            print(line, flush=True)
            if row is not None:
                rows.append(row)
                qc.save(Path(args.json), rows)


if __name__ == "__main__":
    main()
