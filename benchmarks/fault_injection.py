"""Kill the driver at random moments, through the CLI as a user would, and check that
`hpsearch resume` always finishes the search: the planned number of trials, no config run
twice, no trial left RUNNING in optuna.db, every trial's epochs 1..n without gap or repeat,
and nothing left of the killed runs' Ray instances.

    python -m benchmarks.fault_injection --runs 16 --seed 3 [--kill-s 3 9] [--json out.json]

Each run: `hpsearch run` (scheduler drawn from fifo / asha / the default) is SIGKILLed after a
random delay in --kill-s; with probability --kill-resume the first `hpsearch resume` is
SIGKILLed too; then `hpsearch resume` runs to the end (a driver killed before it wrote
hpsearch.json, while its Ray started, is run again with the same command instead). A run
that ended before its kill is checked the same way, and at the end no Ray temp dir the
harness's runs made may be left. Prints one line per run and a summary; exit code 1 if any
run failed a check (this is a harness, not a test: each run takes 20-40 s on 2 cores)."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pandas as pd

ENDED = {"completed", "diverged", "stopped_early"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpsearch", *args]


def _run_until(args: list[str], kill_after: float) -> int | str:
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return "killed"


def check(out: Path, samples: int) -> list[str]:
    """What is wrong with a finished run directory (empty: nothing)."""
    problems = []
    trials = pd.read_csv(out / "trials.csv")
    if len(trials) != samples:
        problems.append(f"{len(trials)} trials, not {samples}")
    params = [c for c in ("depth", "lr", "batch_size", "optimizer") if c in trials]
    if trials[params].duplicated().any():
        problems.append("a config ran twice")
    if not set(trials["status"]) <= ENDED:
        problems.append(f"statuses {sorted(set(trials['status']))}")
    meta = json.loads((out / "hpsearch.json").read_text())
    study = optuna.load_study(study_name=meta["study_name"],
                              storage=f"sqlite:///{out}/optuna.db")
    running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    ended = [t for t in study.trials if t.state.is_finished() and not t.user_attrs.get("lost")]
    if running:
        problems.append(f"{len(running)} trials RUNNING in optuna.db")
    if len(ended) != samples:
        problems.append(f"{len(ended)} ended trials in optuna.db")
    epochs = pd.read_csv(out / "epochs.csv")
    for tid, g in epochs.groupby("trial_id"):
        if list(g["epoch"]) != list(range(1, len(g) + 1)):
            problems.append(f"trial {tid} epochs {list(g['epoch'])}")
    return problems


def one_run(out: Path, rng: random.Random, samples: int, epochs: int,
            kill_s: tuple[float, float], kill_resume: float) -> dict:
    scheduler = rng.choice(["fifo", "asha", None])
    args = ["run", "--trainer", "mlp", "--samples", str(samples), "--max-epochs", str(epochs),
            "--set", "data=digits", "--set", "width=16", "--num-cpus", "2", "--out", str(out)]
    if scheduler:
        args += ["--scheduler", scheduler]
    kills = [round(rng.uniform(*kill_s), 1)]
    first = _run_until(args, kills[0])
    row = {"scheduler": scheduler or "default", "kills_s": kills, "first": first}
    if first == "killed" and not (out / "hpsearch.json").exists():
        # killed before the run was recorded (while its Ray started): a user runs it again
        row["first"] = "killed early"
        res = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            row["outcome"] = f"rerun exited {res.returncode}: {res.stderr.strip()[-300:]}"
            return row
        first = 0
    if first == "killed" and rng.random() < kill_resume:
        kills.append(round(rng.uniform(*kill_s), 1))
        _run_until(["resume", str(out)], kills[-1])
    if first != 0:
        res = subprocess.run(_cli("resume", str(out)), capture_output=True, text=True,
                             timeout=900)
        if res.returncode != 0:
            tail = res.stderr.strip().splitlines()[-1:] if res.stderr.strip() else []
            row["outcome"] = f"resume exited {res.returncode}: {tail}"
            return row
    problems = check(out, samples)
    row["outcome"] = "; ".join(problems) if problems else "ok"
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--max-epochs", type=int, default=4)
    ap.add_argument("--kill-s", type=float, nargs=2, default=(3.0, 9.0))
    ap.add_argument("--kill-resume", type=float, default=0.4,
                    help="probability of killing the first resume too")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true", help="keep the run directories")
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    rays_before = set(Path(tempfile.gettempdir()).glob("hpsearch-ray-*"))
    root = Path(tempfile.mkdtemp(prefix="hpsearch-faults-"))
    rows, failed = [], 0
    for i in range(a.runs):
        row = {"run": i, **one_run(root / f"run{i}", rng, a.samples, a.max_epochs,
                                   tuple(a.kill_s), a.kill_resume)}
        failed += row["outcome"] != "ok"
        rows.append(row)
        print(f"{i:3d}  {row['scheduler']:8s} kills at {row['kills_s']} s  first: "
              f"{row['first']!s:12s} -> {row['outcome']}", flush=True)
    # Every Ray a killed driver started was ended by the resume or rerun that followed.
    left = sorted(str(p) for p in set(Path(tempfile.gettempdir()).glob("hpsearch-ray-*"))
                  - rays_before)
    killed = sum(r["first"] == "killed" for r in rows)
    print(f"\n{len(rows)} runs ({killed} killed mid-run, "
          f"{sum(r['first'] == 'killed early' for r in rows)} while Ray started, "
          f"{sum(len(r['kills_s']) > 1 for r in rows)} with the resume killed too): "
          f"{failed} failed; Ray temp dirs left behind: {left or 'none'}")
    failed += bool(left)
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "rows": rows,
                                            "ray_temp_dirs_left": left}, indent=1))
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
