"""Export the top-k configs of a run (full trainer Config via `asdict`, metrics, trial ids,
version) as YAML or JSON, and rank configs re-trained on fresh seeds (the re-training itself
is orchestration: `hpsearch.search.confirm`)."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path

import pandas as pd
import yaml

from hpsearch import __version__, trainers
from hpsearch.analysis._common import finite
from hpsearch.errors import UserError
from hpsearch.rundir import Run, layout, load_run
from hpsearch.spaces.yaml_space import safe_load_file

__all__ = ["select_top", "export_best_configs", "rank_confirmed"]
# What `export --confirm-seeds` writes beside the configs, and how each file begins.
CONFIRM_FILES = {"confirm.csv": "confirmed_rank,", "confirm_runs.csv": "rank,trial_id,seed,"}


def _exported(path: Path) -> dict | None:
    """The document of an earlier `hpsearch export` at `path`, or None (a file of the
    user's, which an export never replaces)."""
    if path.name in CONFIRM_FILES:
        try:
            with path.open() as f:
                return {} if f.readline().startswith(CONFIRM_FILES[path.name]) else None
        except (OSError, UnicodeDecodeError):
            return None
    try:
        doc = safe_load_file(path)
    except UserError:  # not a file, too large, not text, malformed
        return None
    keys = {"hpsearch_version", "trial_id", "rank", "config"}
    return doc if isinstance(doc, dict) and keys <= set(doc) else None


def _check_out(out: Path, top: int, fmt: str, confirm: bool) -> None:
    """Refuse, before anything is written, an --out holding a file of the user's where this
    export would write (an earlier export's files are replaced)."""
    names = [f"{r}.{fmt}" for r in range(1, top + 1)] + (list(CONFIRM_FILES) if confirm else [])
    for name in names:
        if (out / name).exists() and _exported(out / name) is None:
            raise UserError(f"--out {out}: {name} is there and is not an hpsearch export; "
                            "choose another --out (nothing was written)")


def _params_of(run: Run, trial_id: str) -> dict:
    """The trial's full Tune config (searched + fixed values), from its params.json."""
    for d in run.rundir.trial_dirs():
        if f"_{trial_id}_" in d.name:
            try:
                params = json.loads((d / "params.json").read_text())
            except (OSError, ValueError):
                params = None
            if not isinstance(params, dict):
                raise UserError(f"{d / 'params.json'} is not a mapping of settings")
            return params
    raise UserError(f"no params.json for trial {trial_id} in {run.path}")


def select_top(run: Run, k: int) -> pd.DataFrame:
    """The k completed trials with the best final score (the search's metric after every
    epoch, in its direction): completed trials compare at an equal budget."""
    done = run.trials[run.trials["status"] == "completed"]
    if done.empty:
        statuses = ", ".join(sorted(set(run.trials["status"])))
        raise UserError(f"{run.path}: no completed trial to export "
                        f"({len(run.trials)} trials: {statuses})")
    key = finite(done["final_score"]) * (1 if run.mode == "max" else -1)
    return done.assign(_k=key.fillna(-math.inf)).sort_values(
        "_k", ascending=False, kind="stable").drop(columns="_k").head(k)


def _to_builtin(v):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def export_best_configs(run: Run | str | Path, out_dir: str | Path, top: int = 3,
                        fmt: str = "yaml", confirm: bool = False,
                        warn=None) -> list[tuple[Path, dict]]:
    """Write best/1.yaml .. best/k.yaml, each loadable by `hpsearch train --config`.

    Args:
        run: a loaded run, or its directory.
        confirm: confirm.csv and confirm_runs.csv will be written there too (checked first).
        warn: told of earlier exports of a lower rank left in `out_dir`.

    Returns:
        (path, document written) per config, best first.
    """
    if fmt not in ("yaml", "json"):
        raise UserError(f"format must be yaml or json, got {fmt!r}")
    if top < 1:
        raise UserError(f"--top must be >= 1, got {top}")
    if not isinstance(run, Run):
        run = load_run(run)
    trainer = trainers.get(run.meta["trainer"])
    if confirm and not trainer.has_field("seed"):
        raise UserError(f"--confirm-seeds re-trains on fresh seeds, and trainer "
                        f"{trainer.name!r} has no seed setting (add `seed: int = 0` to its "
                        "Config and seed its training with it)")
    chosen = select_top(run, top)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    if out.is_dir():
        _check_out(out, top, fmt, confirm)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {out}: {exc.strerror or exc}") from None
    written = []
    for rank, row in enumerate(chosen.itertuples(index=False), start=1):
        values = _params_of(run, row.trial_id)
        threads = getattr(row, "cpu_threads", None)
        if trainer.has_field("threads") and not values.get("threads") and threads and \
                math.isfinite(threads):  # the trial's count: `train` repeats its rounding
            values = {**values, "threads": int(threads)}
        cfg = trainer.make_config({k: v for k, v in values.items() if trainer.has_field(k)},
                                  where=f"trial {row.trial_id}")
        doc = {
            "trainer": run.meta["trainer"], "rank": rank, "trial_id": row.trial_id,
            "run": str(run.path), "hpsearch_version": __version__,
            **({"import_path": run.meta["import_path"]} if run.meta.get("import_path") else {}),
            "metric": f"{run.metric} ({run.mode})" + (
                f", {run.metric_name}" if run.metric == "val_metric" else ""),
            "metrics": {f"final_{run.metric}": _to_builtin(row.final_score),
                        "best_val_metric": _to_builtin(row.best_val_metric),
                        "final_val_metric": _to_builtin(row.final_val_metric),
                        "final_val_loss": _to_builtin(row.final_val_loss),
                        "final_train_loss": _to_builtin(row.final_train_loss),
                        "epochs": _to_builtin(row.epochs)},
            "config": dict(cfg) if isinstance(cfg, dict) else dataclasses.asdict(cfg),
        }
        path = out / f"{rank}.{fmt}"
        text = (yaml.safe_dump(doc, sort_keys=False) if fmt == "yaml"
                else json.dumps(doc, indent=2))
        layout.atomic_write(path, text)
        written.append((path, doc))
    rank = len(written) + 1  # an earlier export's lower ranks are not this run's: said
    while warn and (earlier := _exported(out / f"{rank}.{fmt}")) is not None:
        warn(f"{out / f'{rank}.{fmt}'} is from an earlier export (trial {earlier['trial_id']} "
             f"of {earlier.get('run')}), not in this export's top {len(written)}")
        rank += 1
    return written


def rank_confirmed(results: pd.DataFrame, mode: str, metric: str = "val_metric") -> pd.DataFrame:
    """Mean and std of the run's metric per exported config, ranked in the run's direction
    by validation only; the held-out test metric's mean and std are reported beside it
    (`test_mean`, `test_std`), never used to rank. `metric` names what `mean` is of;
    `attrs["error"]`: the first failed re-training's line."""
    rows = []
    for (rank, tid), g in results.groupby(["rank", "trial_id"]):
        vals = finite(g[metric]).dropna().tolist()
        tests = finite(g["test_metric"]).dropna().tolist() if "test_metric" in g else []
        rows.append({"search_rank": rank, "trial_id": tid, "seeds": len(g),
                     "mean": statistics.fmean(vals) if vals else math.nan,
                     "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
                     "test_mean": statistics.fmean(tests) if tests else math.nan,
                     "test_std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
                     "diverged": int((g["status"] == "diverged").sum()),
                     "failed": int((g["status"] == "error").sum())})
    out = pd.DataFrame(rows)
    out = out.sort_values("mean", ascending=(mode == "min"), na_position="last",
                          ignore_index=True)
    out.insert(0, "confirmed_rank", range(1, len(out) + 1))
    out["metric"] = metric  # what `mean` and `std` are of
    errors = results["error"].dropna().tolist() if "error" in results else []
    out.attrs["error"] = errors[0] if errors else None
    return out
