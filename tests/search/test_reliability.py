"""Crashes: a killed trial worker resumes from its checkpoint; a killed driver is resumed by
`hpsearch resume` with the right trial count, no duplicates and a consistent Optuna study."""

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from hpsearch.config import SchedulerConfig, SearchConfig
from hpsearch.rundir import RunDir, layout, tune_state
from hpsearch.search import run_search

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow
VIT = {"data": "digits", "dim": 32, "heads": 2}
# Where the subject is the run's processes and files, not training: a torch-free trainer
# (synthetic curves), so the trial actor loads no torch (~3 CPU-s less each).
CURVES_TRAINER = "tests.search.curves_trainer:train"
CURVES = ("--trainer", CURVES_TRAINER, "--space", "tests/search/curves_space.yaml")


def _result_lines(run_dir: Path) -> dict[str, list[dict]]:
    out = {}
    for f in run_dir.glob("*/result.json"):
        out[f.parent.name] = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
    return out


def _wait(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_killed_worker_resumes_from_checkpoint_without_gap_or_repeat(ray_local, tmp_path):
    run_dir = tmp_path / "worker"
    cfg = SearchConfig(trainer="vit", space="vit_norm_depth", run_dir=str(run_dir), samples=1,
                       max_epochs=6, scheduler=SchedulerConfig(kind="fifo"),
                       fixed=VIT, max_failures=2)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("run", run_search(cfg)))
    thread.start()
    assert _wait(lambda: any(len(v) >= 2 for v in _result_lines(run_dir).values()))
    (rows,) = _result_lines(run_dir).values()
    os.kill(rows[-1]["pid"], signal.SIGKILL)  # the trial's worker process, mid-training
    thread.join(timeout=300)
    (rows,) = _result_lines(run_dir).values()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]  # no gap, no repeat
    assert len({r["pid"] for r in rows}) == 2  # really restarted in a new process
    assert rows[-1]["status"] == "completed"
    assert box["run"].trials.iloc[0]["status"] == "completed"


def _cli(*args):
    return [sys.executable, "-m", "hpsearch", *args]


@pytest.fixture
def foreign_cluster():
    """A Ray cluster someone else started beforehand (ray start --head on loopback), named by
    RAY_ADDRESS: yields (env advertising it, its temp dir)."""
    from hpsearch.search import cluster

    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    temp = f"/tmp/foreign-{os.getpid()}"
    with socket.socket() as s:  # a free port: copies of this test may run side by side
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:  # a failed start can leave its GCS running: the cleanup below ends it too
        subprocess.run([str(Path(sys.executable).with_name("ray")), "start", "--head",
                        f"--port={port}", "--num-cpus=1", "--node-ip-address=127.0.0.1",
                        "--include-dashboard=false", f"--temp-dir={temp}"],
                       env=env, check=True, capture_output=True, timeout=120)
        yield {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, temp
    finally:  # not `ray stop`: it ends every Ray on the machine, the tests' own included
        for _ in range(3):
            for pid in cluster._instance_pids(temp):  # noqa: SLF001
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        shutil.rmtree(temp, ignore_errors=True)


def test_killed_driver_is_resumed_on_its_own_ray(tmp_path, foreign_cluster):
    """Driver SIGKILL, then `hpsearch resume`: nothing lost or repeated, the killed run's Ray
    processes ended, and a cluster advertised by RAY_ADDRESS neither joined nor touched."""
    from hpsearch.search import cluster

    env, temp = foreign_cluster
    foreign = set(cluster._instance_pids(temp))  # noqa: SLF001
    assert foreign
    run_dir = tmp_path / "driver"
    proc = subprocess.Popen(_cli("run", "--trainer", "mlp", "--samples", "5",
                                 "--max-epochs", "3", "--scheduler", "fifo", "--set",
                                 "data=digits", "--set", "width=16", "--num-cpus", "2",
                                 "--out", str(run_dir)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def done():  # one trial ended, and (if possible) another is mid-way with a checkpoint
        ended = [any(r.get("status") == "completed" for r in v)
                 for v in _result_lines(run_dir).values()]
        mid = [n for n, v in _result_lines(run_dir).items()
               if v and v[-1].get("status") == "running"
               and list((run_dir / n).glob("checkpoint_*"))]
        return sum(ended) >= 1 and (mid or len(ended) == 5)

    assert _wait(done, 180)
    record = json.loads((run_dir / "ray_processes.json").read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Tune copies its state files to the run directory in the background, so a kill can
    # leave its trial list older than the searcher's snapshot: drop the newest trial (lost:
    # its config must run again) and one that ended, if any (it must count, not rerun).
    state, data = _saved_state(run_dir)
    entries = [json.loads(t[0]) for t in data["trial_data"]]
    ended = [i for i, e in enumerate(entries[:-1]) if e["status"] == "TERMINATED"][:1]
    data["trial_data"] = [t for i, t in enumerate(data["trial_data"])
                          if i not in ended and i != len(entries) - 1]
    dropped = entries[-1]
    had_folder = any((p / "params.json").is_file() for p in run_dir.iterdir()
                     if f"_{dropped['trial_id']}_" in p.name)
    state.write_text(json.dumps(data))
    # Tune's trial list lags the checkpoints too: with num_to_keep=1, the one it names for an
    # unfinished trial may already be deleted for a newer one. Make it so for every such
    # trial (renamed one number up): resume must restore them from their newest checkpoint.
    lagging = []
    for entry, meta in data["trial_data"]:
        entry, meta = json.loads(entry), json.loads(meta)
        if entry["status"] != "TERMINATED":
            for named in tune_state._named_checkpoints(  # noqa: SLF001
                    bytes.fromhex(meta["checkpoint_manager"]["value"])):
                if Path(named).is_dir():  # deleted, or saved again one number up
                    newer = Path(named).with_name(f"checkpoint_{int(named[-6:]) + 1:06d}")
                    if newer.exists():
                        shutil.rmtree(named)
                    else:
                        Path(named).rename(newer)
                    lagging.append(entry["trial_id"])
    # ... and cut the searcher's snapshot short, if hpsearch had a copy of it by then.
    snap = max(run_dir.glob("searcher-state-*.pkl"))
    copied = (run_dir / ".tune-state-backup" / snap.name).is_file()
    if copied:
        snap.write_bytes(snap.read_bytes()[: snap.stat().st_size // 2])
    # A copy elsewhere is not resumed: Tune's saved state would put new trials in run_dir.
    moved = shutil.copytree(run_dir, tmp_path / "moved")
    res = subprocess.run(_cli("resume", str(moved)), capture_output=True, text=True,
                         timeout=120, env=env)
    assert res.returncode == 2 and f"was moved from {run_dir}" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = subprocess.run(_cli("resume", str(run_dir), "--num-cpus", "2"), capture_output=True,
                         text=True, timeout=400, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert ("restored its last good copy" in res.stderr) == copied
    tag = f"_{dropped['trial_id']}_"
    # Had the dropped trial ended before the kill (in optuna.db, or in the searcher's snapshot
    # while its write to optuna.db was still queued), it counts as it is: nothing said, its
    # folder kept, and the record has it ended, not lost.
    from hpsearch.search.record import LOST_ATTR, TUNE_TRIAL_ATTR

    meta = json.loads((run_dir / "hpsearch.json").read_text())
    counted = [t for t in optuna.load_study(study_name=meta["study_name"],
                                            storage=f"sqlite:///{run_dir}/optuna.db").trials
               if t.user_attrs.get(TUNE_TRIAL_ATTR) == dropped["trial_id"]
               and t.state.is_finished() and not t.user_attrs.get(LOST_ATTR)]
    if counted:
        assert "was lost" not in res.stderr and "no saved state knows" not in res.stderr
        assert [p for p in run_dir.iterdir() if tag in p.name] or not had_folder
    elif dropped["status"] != "TERMINATED":  # it never ended: its config runs again if the
        # searcher's snapshot knew it, else (an older snapshot) its folder is unknown to all
        # (neither, if it had no folder yet and the snapshot never knew it)
        said = [f"trial {dropped['trial_id']} was lost" in res.stderr,
                f"_{dropped['trial_id']}_" in res.stderr and "no saved state knows" in res.stderr]
        assert sum(said) == (1 if had_folder else sum(said)) <= 1, res.stderr
        # its folder (if it had started) is set aside; one without a params.json when the
        # driver was killed may stay if no saved state knew the trial (ledger's rule: Tune
        # may be making such folders; they are out of the tables): a worker of the killed
        # driver can still write the trial's first checkpoint folder just after the kill.
        left = [p for p in run_dir.iterdir() if tag in p.name]
        assert not left or not (had_folder or [p for p in left if (p / "params.json").exists()]
                                or said[0]), (left, res.stderr[-3000:])
        lost = run_dir / ".lost-trials"
        assert all(tag in p.name for p in (lost.iterdir() if lost.exists() else [])), (
            sorted(p.name for p in lost.iterdir()), tag, res.stderr[-3000:])
    # (Tune's own lag can add one the test did not make.)
    assert res.stderr.count("the trial resumes from its newest one") >= len(lagging)
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 5
    assert set(trials["status"]) <= {"completed", "diverged"}, trials
    params = [c for c in ("depth", "lr", "batch_size", "optimizer") if c in trials]
    assert not trials[params].duplicated().any()
    meta = json.loads((run_dir / "hpsearch.json").read_text())
    study = optuna.load_study(study_name=meta["study_name"],
                              storage=f"sqlite:///{run_dir}/optuna.db")
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 5
    # The killed run's Ray processes are gone: none names its private temp dir any more.
    assert record["temp_dir"].startswith("/tmp/hpsearch-ray-")
    assert cluster._instance_pids(record["temp_dir"]) == []  # noqa: SLF001
    assert not Path(record["temp_dir"]).exists()
    # The advertised cluster: all its processes alive, none of them ran a trial.
    assert foreign <= set(cluster._instance_pids(temp))  # noqa: SLF001
    rows = [r for v in _result_lines(run_dir).values() for r in v]
    assert rows and all(r.get("pid") not in foreign for r in rows)
    epochs = pd.read_csv(run_dir / "epochs.csv")
    for _, g in epochs.groupby("trial_id"):
        assert list(g["epoch"]) == list(range(1, len(g) + 1))


def test_second_run_on_a_locked_directory_is_refused(tmp_path):
    from hpsearch.rundir import RunDir

    rd = RunDir(tmp_path / "locked")
    rd.create()
    with rd.lock():
        res = subprocess.run(_cli("run", "--trainer", "mlp", "--set", "data=digits",
                                  "--samples", "1", "--max-epochs", "1", "--out", str(rd.path)),
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr
        assert f"in use by another hpsearch process (pid {os.getpid()})" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        res = subprocess.run(_cli("resume", str(rd.path)), capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 2 and "Traceback" not in res.stderr


def test_taking_the_lock_removes_half_written_files_a_killed_writer_left(tmp_path):
    """A process killed inside `atomic_write` leaves its temp file (never renamed); whoever
    next holds the run's lock removes those, and nothing else."""
    from hpsearch.rundir import RunDir, layout

    rd = RunDir(tmp_path / "run")
    rd.create()
    backup = rd.path / layout.TUNE_STATE_BACKUP
    backup.mkdir()
    stale = [rd.path / f".{layout.TRIALS}.k2j4x9.tmp", backup / ".experiment_state.a1.tmp"]
    kept = [rd.path / layout.TRIALS, rd.path / "notes.tmp", rd.path / ".notes"]
    for f in stale + kept:
        f.write_text("x")
    with rd.lock():
        assert not any(f.exists() for f in stale)
        assert all(f.exists() for f in kept)


def test_crafted_process_record_kills_nothing(tmp_path):
    from hpsearch.rundir import RunDir, layout
    from hpsearch.search import cluster

    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                               "--role=ray-array-job"])
    try:
        rd = RunDir(tmp_path / "run")
        rd.create()
        for temp_dir in ("/", "/tmp", str(tmp_path)):
            rd.write_json(layout.PROCESSES, {"temp_dir": temp_dir, "pids": [victim.pid]})
            assert cluster.cleanup_stale(rd) == []
        assert victim.poll() is None  # still alive
    finally:
        victim.kill()


def test_run_killed_while_its_ray_starts_leaves_nothing_the_next_run_does_not_end(tmp_path):
    """A driver killed inside `ray.init` (before hpsearch.json) had recorded nothing: its
    Ray's temp dir (and any process still alive) stayed for good. The record is written
    before Ray starts (for `hpsearch run` into that directory), and the watcher started with
    the temp dir ends that Ray as soon as the driver dies."""
    run_dir = tmp_path / "early"
    record = run_dir / "ray_processes.json"
    args = ("run", *CURVES, "--samples", "1", "--max-epochs", "1", "--num-cpus", "1",
            "--out", str(run_dir))
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait(record.is_file, 120)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (run_dir / "hpsearch.json").exists()  # killed while its Ray started
    temp_dir = json.loads(record.read_text())["temp_dir"]
    # Its watcher ends what had started of that Ray, and its temp dir, without waiting for
    # a next run (which may never come).
    assert _wait(lambda: not Path(temp_dir).exists(), 30)
    from hpsearch.search import processes

    assert processes._instance_pids(temp_dir) == []  # noqa: SLF001
    res = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not Path(temp_dir).exists() and not record.exists()
    assert "ignoring" not in res.stderr and "ended" not in res.stderr, res.stderr[-3000:]
    assert len(pd.read_csv(run_dir / "trials.csv")) == 1


def test_resume_of_a_run_killed_before_tune_saved_any_state_starts_it_again(tmp_path):
    """A driver killed after writing hpsearch.json but before Ray Tune's first saved state
    (the first seconds of a run) left a run `resume` refused (exit 2) and `run` would not
    overwrite: with nothing ended, resume runs the search again from its start. Killed
    here once Tune has written tuner.pkl (when the Tuner is built), the latest point before
    its trial list: Tune's restore of that ran one trial of two and ended 'interrupted'."""
    run_dir = tmp_path / "unsaved"
    proc = subprocess.Popen(_cli("run", *CURVES, "--samples", "2", "--max-epochs", "1",
                                 "--num-cpus", "1", "--out", str(run_dir)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait((run_dir / "tuner.pkl").is_file, 120)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    created = json.loads((run_dir / "hpsearch.json").read_text())["created"]
    # Had Tune been a moment faster, it had saved (or begun to save) some state: undo that.
    shutil.rmtree(run_dir / layout.TUNE_STATE_BACKUP, ignore_errors=True)
    for pattern in layout.TUNE_STATE_GLOBS:
        for f in run_dir.glob(pattern):
            f.unlink()
    res = subprocess.run(_cli("resume", str(run_dir)), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "it starts again" in res.stderr
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 2 and set(trials["status"]) == {"completed"}
    meta = json.loads((run_dir / "hpsearch.json").read_text())
    assert meta["finished"] is True and meta["created"] == created


def test_a_ray_that_fails_to_start_leaves_no_temp_dir_and_no_record(tmp_path, monkeypatch):
    import ray

    from hpsearch.rundir import RunDir, layout
    from hpsearch.search import cluster

    rd = RunDir(tmp_path / "run")
    rd.create()
    seen = {}

    def broken_init(**kw):
        seen["temp"], seen["recorded"] = kw["_temp_dir"], rd.file(layout.PROCESSES).is_file()
        raise RuntimeError("raylet failed to start")

    monkeypatch.setattr(ray, "init", broken_init)
    with pytest.raises(RuntimeError):
        cluster.connect(num_cpus=1, rundir=rd)
    assert seen["recorded"]  # recorded before Ray started
    assert not Path(seen["temp"]).parent.exists() and not rd.file(layout.PROCESSES).exists()


def test_a_local_ray_with_fewer_cpus_than_a_trial_is_ended_and_refused(tmp_path, monkeypatch):
    """Ray can find fewer CPUs than the machine has (a cgroup): a trial asking for more than
    it found would wait for ever in Tune, so the new Ray is ended and the run refused."""
    import types

    import ray

    from hpsearch.errors import UserError
    from hpsearch.rundir import RunDir, layout
    from hpsearch.search import checks, cluster

    rd = RunDir(tmp_path / "run")
    rd.create()
    ended = []
    monkeypatch.setattr(checks, "os", types.SimpleNamespace(cpu_count=lambda: 64))
    monkeypatch.setattr(ray, "init", lambda **kw: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(cluster, "_check_loopback", lambda: None)
    shutdown = cluster.shutdown
    monkeypatch.setattr(cluster, "shutdown", lambda t: (ended.append(t), shutdown(t)))
    with pytest.raises(UserError, match="--cpus-per-trial 3 but the local Ray has 2 CPUs"):
        cluster.connect(rundir=rd, cpus_per_trial=3)
    assert len(ended) == 1 and not rd.file(layout.PROCESSES).exists()
    assert not Path(ended[0]).exists() and ended[0] not in cluster._WATCHERS
    with pytest.raises(UserError, match="has 1 CPUs"):  # a known count: before Ray starts
        cluster.connect(num_cpus=1, rundir=rd, cpus_per_trial=2)
    assert len(ended) == 1


def test_the_cpu_check_counts_the_ray_this_process_started_already(monkeypatch):
    """An API user's own `ray.init(num_cpus=8)` on a 2-core machine: trials of 4 CPUs fit
    it, though not the machine."""
    import types

    import hpsearch
    from hpsearch.errors import UserError
    from hpsearch.search import checks

    monkeypatch.setattr(checks, "os", types.SimpleNamespace(cpu_count=lambda: 2))
    cfg = hpsearch.search_config("mlp", "mlp_optimizers", fixed={"data": "digits"},
                                 cpus_per_trial=4, out="runs/x")
    fake = types.SimpleNamespace(is_initialized=lambda: True,
                                 cluster_resources=lambda: {"CPU": 8.0})
    monkeypatch.setitem(sys.modules, "ray", fake)
    checks.validate(cfg)
    fake.is_initialized = lambda: False
    with pytest.raises(UserError, match="--cpus-per-trial 4 but the local Ray has 2 CPUs"):
        checks.validate(cfg)


def test_a_run_is_marked_finished_only_once_its_tables_are_written(tmp_path, monkeypatch):
    """A driver killed (here: a write failing) between the tables and the meta leaves a run
    `resume` finishes, not one it takes for done without tables."""
    import json

    from hpsearch.rundir import RunDir
    from hpsearch.search import runner
    from hpsearch.search.schedulers import EpochBudget

    rd = RunDir(tmp_path / "run")
    rd.create()
    meta = {"trainer": "mlp", "metric": "val_metric", "mode": "max", "finished": False}
    rd.write_meta(meta)
    trial = rd.path / "run_trial_t1_1_x"
    trial.mkdir()
    (trial / "result.json").write_text(json.dumps(
        {"trial_id": "t1", "epoch": 1, "val_metric": 0.5, "status": "completed"}) + "\n")

    def full(*a):
        raise OSError("No space left on device")
    monkeypatch.setattr(RunDir, "write_table", full)
    EpochBudget.REACHED[str(rd.path)] = 1  # the budget was spent: the run is finished
    with pytest.raises(OSError):
        runner._finish(rd, dict(meta), str(rd.path), 1)
    assert rd.read_meta()["finished"] is False and not rd.settled(rd.read_meta())
    monkeypatch.undo()
    EpochBudget.REACHED[str(rd.path)] = 1
    runner._finish(rd, dict(meta), str(rd.path), 1)
    assert rd.read_meta()["finished"] is True and rd.settled(rd.read_meta())


def test_a_run_that_fails_before_writing_anything_leaves_no_directory(tmp_path, monkeypatch):
    """`--out a/b/run` where none of them existed, and Ray fails to start: the run, and the
    parents made for it, are gone again; a parent that was there stays."""
    import ray

    import hpsearch
    from hpsearch.search import run_search

    def broken_init(**kw):
        raise RuntimeError("raylet failed to start")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # not the tests' shared Ray
    monkeypatch.setattr(ray, "init", broken_init)
    cfg = hpsearch.search_config("mlp", "mlp_optimizers", samples=1, max_epochs=1,
                                 out=tmp_path / "a" / "b" / "run")
    with pytest.raises(RuntimeError, match="raylet"):
        run_search(cfg, stream=None)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    cfg = dataclasses.replace(cfg, run_dir=str(tmp_path / "kept" / "run"))
    with pytest.raises(RuntimeError, match="raylet"):
        run_search(cfg, stream=None)
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and not any(
        (tmp_path / "kept").iterdir())


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MiB filesystem of its own (tmpfs; needs root, else the test is skipped)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(disk)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_disk_filling_up_stops_cleanly_and_resumes(ray_local, small_disk, monkeypatch,
                                                   capsys):
    """In-process on the tests' shared Ray (the CLI's exit status and lines as a process:
    test_run_refuses_to_start_on_a_full_disk and the other subprocess tests)."""
    from hpsearch.cli import main

    ballast = small_disk / "ballast"
    ballast.mkdir()
    run_dir = small_disk / "run"
    # 4 trials x 4 epochs x 2 MiB on 48 MiB: below 36 MiB free after ~6 epochs, with ~2.5 s
    # of epochs still to come; the guard looks at most once a second, on a result (with
    # 0.2 s epochs and 30 MiB, a driver busy elsewhere saw the results in one burst at the
    # end and never looked while free space was low).
    monkeypatch.setenv("HPSEARCH_MIN_FREE_MB", "36")
    monkeypatch.syspath_prepend(str(ROOT))
    assert main(["run", "--trainer", "tests.search.disk_trainer:train",
                 "--space", str(ROOT / "tests/search/probe_space.yaml"), "--samples", "4",
                 "--max-epochs", "4", "--scheduler", "fifo", "--set",
                 f"ballast_dir={ballast}", "--set", "sleep_s=0.5", "--out", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hpsearch: error: stopped: only") and "hpsearch resume" in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert json.loads((run_dir / "hpsearch.json").read_text())["finished"] is False, \
        (run_dir / "trials.csv").read_text()
    for f in ballast.iterdir():  # the user frees space
        f.unlink()
    monkeypatch.setenv("HPSEARCH_MIN_FREE_MB", "1")
    assert main(["resume", str(run_dir)]) == 0, capsys.readouterr().err[-3000:]
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}
    assert json.loads((run_dir / "hpsearch.json").read_text())["finished"] is True


def test_run_refuses_to_start_on_a_full_disk(small_disk):
    env = {**os.environ, "HPSEARCH_MIN_FREE_MB": "100"}
    res = subprocess.run(_cli("run", "--trainer", "mlp", "--set", "data=digits",
                              "--out", str(small_disk / "run")), env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and "MiB free on the disk" in res.stderr
    assert not (small_disk / "run").exists()


def _saved_state(run_dir: Path) -> tuple[Path, dict]:
    """Tune's newest experiment state after a kill, and its trial list, once the run's last
    good copies are put back where the kill cut Tune's copy short (an empty trial list in
    one CI run), as `resume` would."""
    tune_state.repair(RunDir(run_dir))
    state = max(run_dir.glob("experiment_state-*.json"))
    return state, json.loads(state.read_text())


def test_killed_grid_run_resumes_every_point_once(tmp_path):
    """A grid run's points are counted by its searcher: a driver killed while Tune copied its
    state (trial list older than its search state) used to leave a point that never ran and
    a run that `resume` could never finish (exit 130 each time)."""
    space = tmp_path / "g.yaml"
    space.write_text("params:\n  width: {type: float, low: 0.0, high: 1.0}\n"
                     "grid: {width: [0.25, 0.5, 0.75]}\n")
    run_dir = tmp_path / "grid"
    proc = subprocess.Popen(_cli("run", "--grid", "--trainer", CURVES_TRAINER, "--space",
                                 str(space), "--max-epochs", "1", "--set", "epoch_s=1.0",
                                 "--num-cpus", "1", "--out", str(run_dir)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = lambda: sum(any(r.get("status") == "completed" for r in v)  # noqa: E731
                       for v in _result_lines(run_dir).values()) >= 1
    assert _wait(done, 180)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state, data = _saved_state(run_dir)
    data["trial_data"] = data["trial_data"][:-1]  # Tune's list behind its search state
    state.write_text(json.dumps(data))
    res = subprocess.run(_cli("resume", str(run_dir), "--num-cpus", "1"), capture_output=True,
                         text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    trials = pd.read_csv(run_dir / "trials.csv")
    assert sorted(trials["width"]) == [0.25, 0.5, 0.75]
    assert set(trials["status"]) == {"completed"}
