"""Kill the driver at random moments, through the CLI as a user would, and check that
`hpsearch resume` always finishes the search: the planned number of trials, no config run
twice, no trial left RUNNING in optuna.db, every trial's epochs 1..n without gap or repeat,
and nothing left of the killed runs' Ray instances.

    python -m benchmarks.fault_injection --runs 16 --seed 3 [--kill-s 3 9] [--json out.json]
        [--trainer mlp|sleep] [--kill-daemon P] [--kill-worker P] [--kill-resume P]

Each run: `hpsearch run` (scheduler drawn from fifo / asha / the default) is SIGKILLed after a
random delay in --kill-s; with probability --kill-resume the first `hpsearch resume` is
SIGKILLed too (with --kill-worker P, one of the run's trial workers is SIGKILLed first, with
probability P; with --kill-daemon P, the run's GCS or raylet is SIGKILLed instead of its driver,
with probability P, and the driver must then end in one line, exit code 1, within 14 s);
then `hpsearch resume` runs to the end (a driver killed before it wrote
hpsearch.json, while its Ray started, is run again with the same command instead). A run
that ended before its kill is checked the same way, and at the end no Ray temp dir the
harness's runs made may be left, nor anything else they put in the temp dir (a checkpoint
folder of a killed trial worker). Prints one line per run and a summary; exit code 1 if any
run failed a check (this is a harness, not a test: each run takes 20-40 s on 2 cores)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd

from hpsearch.rundir import layout
from hpsearch.search import lifeline, processes
from hpsearch.search.record import LOST_ATTR

ENDED = {"completed", "diverged", "stopped_early"}
# In the temp dir by design, shared and kept between processes: not a run's leftovers.
SHARED_CACHES = ("torchinductor_", "_ray_lockfiles", "pyright", "hsperfdata_")


# The MLP saves a checkpoint every epoch; the sleep trainer none (Tune then copies a trial's
# results into the run directory less often: what a killed driver had not copied is lost
# unless its Ray's watcher salvages it).
TRAINERS = {"mlp": ("--trainer", "mlp", "--set", "data=digits", "--set", "width=16"),
            "sleep": ("--trainer", "benchmarks.sleep_trainer:train", "--space",
                      str(Path(__file__).with_name("sleep_space.yaml")), "--set", "epoch_s=0.3")}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpsearch", *args]


def _trial_workers(out: Path) -> list[int]:
    """The Ray worker processes running trials in the run at `out` (by its recorded Ray)."""
    try:
        temp = json.loads((out / layout.PROCESSES).read_text())["temp_dir"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    found = []
    for pid in processes._instance_pids(temp):  # noqa: SLF001
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, UnicodeDecodeError):
            continue
        if title.startswith("ray::") and not title.startswith(
                ("ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent")):
            found.append(pid)
    return found


def _run_until(args: list[str], kill_after: float, worker_at: float | None = None,
               out: Path | None = None, daemon: str | None = None,
               ) -> tuple[int | str, int | None]:
    """Run the CLI; SIGKILL it after `kill_after` s (or, with `daemon`, that daemon of its
    private Ray: "gcs_server" or "raylet"), and one of its trial workers at `worker_at` s.
    Returns (exit code or "killed", the worker pid killed or None); a run whose daemon was
    killed returns "lost DAEMON: exit CODE in S s" (CODE 1 and the lifeline's line within
    14 s is right) or "lost DAEMON: hung" (killed 30 s on)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=err)
        start, worker = time.monotonic(), None
        while True:
            try:
                return proc.wait(timeout=0.1), worker
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic() - start
            if worker_at is not None and worker is None and now >= worker_at:
                pids = _trial_workers(out)
                if pids:
                    worker = pids[0]
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker, signal.SIGKILL)
            if now >= kill_after and daemon and (out / layout.PROCESSES).exists():
                temp = json.loads((out / layout.PROCESSES).read_text())["temp_dir"]
                pids = [p for p, n in lifeline.vital_pids(temp).items() if n == daemon]
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed = time.monotonic()
                    try:
                        code = proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                        return f"lost {daemon}: hung", worker
                    err.seek(0)
                    said = "said" if b"lost its" in err.read() else "silent"
                    return (f"lost {daemon}: exit {code} in {time.monotonic() - killed:.1f} s, "
                            f"{said}"), worker
            if now >= kill_after:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return "killed", worker


def check(out: Path, samples: int) -> list[str]:
    """What is wrong with a finished run directory (empty: nothing)."""
    problems = []
    trials = pd.read_csv(out / "trials.csv")
    if len(trials) != samples:
        problems.append(f"{len(trials)} trials, not {samples}")
    params = [c for c in ("depth", "lr", "batch_size", "optimizer", "x") if c in trials]
    if trials[params].duplicated().any():
        problems.append("a config ran twice")
    if not set(trials["status"]) <= ENDED:
        problems.append(f"statuses {sorted(set(trials['status']))}")
    meta = json.loads((out / "hpsearch.json").read_text())
    study = optuna.load_study(study_name=meta["study_name"],
                              storage=f"sqlite:///{out}/optuna.db")
    running = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    ended = [t for t in study.trials
             if t.state.is_finished() and not t.user_attrs.get(LOST_ATTR)]
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
            kill_s: tuple[float, float], kill_resume: float, kill_worker: float,
            kill_daemon: float = 0.0, trainer: str = "mlp") -> dict:
    scheduler = rng.choice(["fifo", "asha", None])
    args = ["run", *TRAINERS[trainer], "--samples", str(samples), "--max-epochs", str(epochs),
            "--num-cpus", "2", "--out", str(out)]
    if scheduler:
        args += ["--scheduler", scheduler]
    kills = [round(rng.uniform(*kill_s), 1)]
    worker_at = rng.uniform(kill_s[0] / 2, kills[0]) if rng.random() < kill_worker else None
    daemon = rng.choice(lifeline.VITAL) if rng.random() < kill_daemon else None
    first, worker = _run_until(args, kills[0], worker_at, out, daemon)
    row = {"scheduler": scheduler or "default", "kills_s": kills, "first": first,
           "worker_killed": worker}
    if str(first).startswith("lost "):  # the driver must end in one line, in seconds
        code, took = first.split("exit ")[-1].split(" in ") if "exit" in first else ("", "")
        if code != "1" or not first.endswith("said") or float(took.split()[0]) > 14:
            row["outcome"] = f"{first} (expected: exit 1 in < 14 s with the line)"
            return row
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
        _run_until(["resume", str(out)], kills[-1])  # (exit code, None)
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
    ap.add_argument("--kill-worker", type=float, default=0.0,
                    help="probability of also SIGKILLing one trial worker before the driver")
    ap.add_argument("--kill-daemon", type=float, default=0.0,
                    help="probability of SIGKILLing the run's GCS or raylet, not its driver")
    ap.add_argument("--trainer", choices=sorted(TRAINERS), default="mlp")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true", help="keep the run directories")
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    tmp = Path(tempfile.gettempdir())
    before = set(tmp.iterdir())
    root = Path(tempfile.mkdtemp(prefix="hpsearch-faults-"))
    rows, failed = [], 0
    for i in range(a.runs):
        row = {"run": i, **one_run(root / f"run{i}", rng, a.samples, a.max_epochs,
                                   tuple(a.kill_s), a.kill_resume, a.kill_worker,
                                   a.kill_daemon, a.trainer)}
        failed += row["outcome"] != "ok"
        rows.append(row)
        worker = f"worker {row['worker_killed']} killed, " if row.get("worker_killed") else ""
        print(f"{i:3d}  {row['scheduler']:8s} {worker}kills at {row['kills_s']} s  first: "
              f"{row['first']!s:12s} -> {row['outcome']}", flush=True)
    # Every Ray a killed driver started was ended by the resume or rerun that followed, and
    # nothing else of the runs stays in the temp dir (a killed trial worker's checkpoint
    # folder); caches meant to outlive a process aside.
    left = sorted(str(p) for p in set(tmp.iterdir()) - before - {root}
                  if not p.name.startswith(SHARED_CACHES))
    rays_left = [p for p in left if Path(p).name.startswith(processes.TEMP_PREFIX)]
    killed = sum(r["first"] == "killed" for r in rows)
    print(f"\n{len(rows)} runs ({killed} killed mid-run, "
          f"{sum(r['first'] == 'killed early' for r in rows)} while Ray started, "
          f"{sum(len(r['kills_s']) > 1 for r in rows)} with the resume killed too, "
          f"{sum(bool(r.get('worker_killed')) for r in rows)} with a trial worker killed, "
          f"{sum(str(r['first']).startswith('lost ') for r in rows)} with a Ray daemon "
          f"killed): "
          f"{failed} failed; Ray temp dirs left behind: {rays_left or 'none'}; anything else "
          f"left in {tmp}: {sorted(set(left) - set(rays_left)) or 'none'}")
    failed += bool(left)
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "rows": rows,
                                            "ray_temp_dirs_left": rays_left,
                                            "temp_left": left}, indent=1))
    if not a.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
