"""What every search-quality runner shares (numpy only: the field baselines run in their own
environment): the landscapes, their known optimum, and turning a stream of reported epochs
into regret versus epochs consumed.

A trace is a list of (trial, epoch, observed score, config) in the order the epochs were
reported. The incumbent after k epochs is what a user would take home then: the trial with
the best observed score at the last epoch among trials that finished all epochs; before any
did, the best at the highest epoch any trial reached (never an early-stopped trial's score
compared with a finished one's). Regret = optimum - true final score of the incumbent (true:
noise-free, at the last epoch; chance for a config that diverges).
"""

from __future__ import annotations

import json
import math
import os
from functools import lru_cache
from pathlib import Path

from benchmarks import landscapes, lcbench

SYNTHETIC = landscapes.LANDSCAPES
LCBENCH_TASKS = ("34539", "189909", "3945")
HERE = Path(__file__).parent


def landscape_names() -> list[str]:
    return [*SYNTHETIC, *(f"lcbench-{t}" for t in LCBENCH_TASKS)]


# Each epoch sleeps this long in the Ray runs, so that concurrent trials interleave their
# epochs as real ones do (instant trials would each run to their end in one go).
EPOCH_S = 0.02


def spec(name: str, seed: int) -> dict:
    """Trainer, space, fixed settings, epochs per trial of a landscape for one seed (the
    synthetic instance is the seed, so each seed is a different landscape)."""
    if name.startswith("lcbench-"):
        return {"trainer": "benchmarks.lcbench:train",
                "space": str(HERE / "spaces" / "lcbench.yaml"),
                "fixed": {"task": name.split("-", 1)[1], "epoch_s": EPOCH_S},
                "max_epochs": 52}
    return {"trainer": "benchmarks.landscapes:train", "space": "mlp_optimizers",
            "fixed": {"landscape": name, "instance": seed, "epoch_s": EPOCH_S},
            "max_epochs": 27}


def plugin(name: str):
    """The trainer module of a landscape (benchmarks.landscapes or benchmarks.lcbench)."""
    return lcbench if name.startswith("lcbench-") else landscapes


def trainer_config(name: str, seed: int, params: dict, **over):
    """The plugin's Config for `params` on landscape `name`: its fixed settings, every epoch,
    then `over`; keys the Config lacks are dropped (a flat space samples knobs a config
    does not use)."""
    mod, s = plugin(name), spec(name, seed)
    values = {**params, **s["fixed"], "epochs": s["max_epochs"], **over}
    if mod is landscapes:  # its make also reads a field method's one_minus_beta2
        return landscapes.make(values)
    keys = set(mod.Config.__dataclass_fields__)
    return mod.Config(**{k: v for k, v in values.items() if k in keys})


@lru_cache(maxsize=None)
def optimum(name: str, seed: int) -> float:
    s = spec(name, seed)
    if name.startswith("lcbench-"):
        return lcbench.optimum(s["fixed"]["task"], s["max_epochs"])
    return landscapes.optimum(name, seed, s["max_epochs"])


def true_final(name: str, seed: int, config: dict) -> float:
    s = spec(name, seed)
    if name.startswith("lcbench-"):
        return lcbench.true_final(config, s["fixed"]["task"], s["max_epochs"])
    return landscapes.true_final(config, name, seed, s["max_epochs"])


def regret_curve(name: str, seed: int, trace: list, budget: int,
                 maximize: bool = True) -> list[tuple[int, float]]:
    """[(epochs consumed, regret)] after each reported epoch, up to `budget` epochs."""
    top = spec(name, seed)["max_epochs"]
    opt = optimum(name, seed)
    sign = 1.0 if maximize else -1.0
    finals: dict = {}
    best_done = None  # (score, trial) among trials that reached the last epoch
    best_far = None  # (epoch, score, trial) at the highest epoch reached
    out, cache = [], {}
    for k, (trial, epoch, score, config) in enumerate(trace[:budget], start=1):
        if score is None or not math.isfinite(score):
            score = -math.inf
        s = sign * score
        if epoch >= top and (best_done is None or s > best_done[0]):
            best_done = (s, trial)
        if best_far is None or (epoch, s) > best_far[:2]:
            best_far = (epoch, s, trial)
        finals.setdefault(trial, config)
        inc = best_done[1] if best_done else best_far[2]
        if inc not in cache:
            cache[inc] = true_final(name, seed, finals[inc])
        out.append((k, opt - cache[inc]))
    return out


def regret_at(curve: list[tuple[int, float]], epochs: int) -> float:
    """Regret after `epochs` epochs (the first value if none yet: nothing found)."""
    best = None
    for k, r in curve:
        if k > epochs:
            break
        best = r
    return best if best is not None else (curve[0][1] if curve else math.nan)


def save(path: Path, rows: list[dict]) -> None:
    """Write `rows` as JSON, atomically (a sweep rewrites its file after every run)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, path)


def compact(row: dict, budget: int) -> dict:
    """A run as `results_search_quality.json` keeps it: regret at 1/4, 1/2 and all of the
    budget, and the regret curve every 25 epochs (not every epoch)."""
    curve = row["curve"]
    out = {k: row[k] for k in ("landscape", "seed", "concurrency", "method")}
    # epochs: how far the run got (below `budget`, its regret is at fewer epochs).
    out.update(budget=budget, wall_s=round(row["wall_s"], 1),
               epochs=min(curve[-1][0] if curve else 0, budget),
               regret={str(f): round(regret_at(curve, int(budget * f)), 5)
                       for f in (0.25, 0.5, 1.0)},
               curve_every_25=[[k, round(regret_at(curve, k), 5)]
                               for k in range(25, budget + 1, 25)])
    return out


def merge_into(path: Path, rows: list[dict], budget_of: dict) -> int:
    """Compact `rows` and write them into the results file at `path`, replacing the runs
    with the same landscape, seed, concurrency and method; returns the number of rows."""
    key = ("landscape", "seed", "concurrency", "method")
    new = [compact(r, budget_of[r["landscape"]]) for r in rows]
    done = {tuple(r[k] for k in key) for r in new}
    old = json.loads(path.read_text()) if path.exists() else []
    merged = [r for r in old if tuple(r[k] for k in key) not in done] + new
    path.write_text(json.dumps(merged, indent=0))
    return len(merged)
