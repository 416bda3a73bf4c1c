"""`--storage s3://...` end to end from the CLI against a local S3 server (moto): trials and
checkpoints live in the bucket, results are copied into the local run directory, analyze
re-fetches them, an interrupted search resumes from the bucket, and bad URIs fail early."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest

from tests.search.s3_server import CREDS, moto_bucket

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def s3():
    """(URI prefix, pyarrow fs) of a bucket on a local moto S3 server."""
    with moto_bucket("hpsearch-test") as found:
        yield found


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "hpsearch", *args], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, **CREDS}, timeout=400, **kw)


def _bucket_files(fs, name):
    sel = pafs.FileSelector(f"hpsearch-test/runs/{name}", recursive=True, allow_not_found=True)
    return [i.path for i in fs.get_file_info(sel) if i.type == pafs.FileType.File]


@pytest.mark.slow
def test_interrupted_search_resumes_from_the_bucket(s3, tmp_path, monkeypatch, capsys):
    """Ctrl-C, then resume from the bucket; trials and checkpoints live in the bucket, the
    results are copied into the local run directory, and analyze fetches them again."""
    uri, fs = s3
    run_dir = tmp_path / "s3int"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpsearch", "run", "--trainer", "mlp", "--samples", "3",
         "--max-epochs", "2", "--scheduler", "fifo", "--set", "data=digits",
         "--set", "width=16", "--num-cpus", "1", "--storage", uri, "--out", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
        env={**os.environ, **CREDS})
    seen = threading.Event()

    def watch():
        for line in proc.stdout:
            if " done " in line and not line.split("]")[1].strip().startswith("0/"):
                seen.set()
    threading.Thread(target=watch, daemon=True).start()
    assert seen.wait(240), "no trial finished"
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert proc.wait(120) == 130
    assert json.loads((run_dir / "hpsearch.json").read_text())["finished"] is False
    res = _cli("resume", str(run_dir), "--num-cpus", "1")
    assert res.returncode == 0, res.stderr[-3000:]
    # The progress line's best counts the trials that ended before the interruption (the
    # callback's state came back from the bucket) and names the summary's best trial.
    lines = [ln for ln in res.stdout.splitlines() if " done " in ln]
    first, last = lines[0], lines[-1]
    assert not first.startswith("[    0s] 0/") and "best@2 " in first, res.stdout
    best = next(ln for ln in res.stdout.splitlines() if ln.startswith("best trial "))
    assert last.startswith("[") and " 3/3 done " in last, res.stdout
    assert last.endswith(f"({best.split()[2].rstrip(':')})") and "best@2 " in last, res.stdout
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 3 and set(trials["status"]) <= {"completed", "diverged"}
    meta = json.loads((run_dir / "hpsearch.json").read_text())
    assert meta["finished"] is True
    assert meta["experiment"].startswith("s3://hpsearch-test/runs/s3int?")
    files = _bucket_files(fs, "s3int")
    assert any("experiment_state" in f for f in files)
    # where `resume` reopens the searcher (storage.reopen_search): the experiment's top level
    assert any(f.rsplit("/", 1)[1].startswith("search_gen_state-")
               and f.rsplit("/", 2)[1] == "s3int" for f in files)
    assert any("/checkpoint_" in f for f in files)  # checkpoints stay in the bucket
    assert not list(run_dir.glob("*/checkpoint_*"))
    from hpsearch.search import storage

    assert storage.pull_results(meta["experiment"], run_dir) == 0  # all here already
    # The local copy is lost: analyze fetches the results again from the bucket.
    for d in run_dir.glob("run_trial_*"):
        shutil.rmtree(d)
    from hpsearch.cli import main

    for key, val in CREDS.items():  # in-process: the CLI's exit codes are checked above
        monkeypatch.setenv(key, val)
    assert main(["analyze", str(run_dir)]) == 0, capsys.readouterr().err[-3000:]
    assert len(list(run_dir.glob("run_trial_*/result.json"))) == 3
    assert (run_dir / "report" / "report.html").exists()


def test_a_finished_search_in_the_bucket_is_reopened(s3):
    """`resume` of a run stored in a bucket clears the searcher's saved FINISHED flag there
    too (tune_state.reopen_search's twin): else a config Tune's saved state lost never runs."""
    import pickle

    import ray.cloudpickle as cloudpickle

    from hpsearch.search import storage

    uri, fs = s3
    base, query = uri.split("?", 1)
    root = "hpsearch-test/runs/reopen"
    state = {"counter": 3, "finished": True, "name:ConcurrencyLimiter": {"finished": 1}}
    for name, data in (("search_gen_state-2026-12-01_07-01-54.json", cloudpickle.dumps(state)),
                       ("search_gen_state-2026-12-01_07-00-00.json", b"\x80\x05cut"),
                       ("trial_x/search_gen_state-2026-12-01_07-01-54.json",
                        cloudpickle.dumps(state))):
        with fs.open_output_stream(f"{root}/{name}") as f:
            f.write(data)
    assert storage.reopen_search(f"{base}/reopen?{query}")
    with fs.open_input_stream(f"{root}/search_gen_state-2026-12-01_07-01-54.json") as f:
        assert pickle.loads(f.read()) == {**state, "finished": False}
    with fs.open_input_stream(f"{root}/trial_x/search_gen_state-2026-12-01_07-01-54.json") as f:
        assert pickle.loads(f.read()) == state  # only the experiment's own, top level
    assert not storage.reopen_search(f"{base}/reopen?{query}")  # nothing left to clear


@pytest.mark.parametrize("uri, message", [
    ("foo://bucket/runs", "Unrecognized filesystem"),
    ("s3://key:secret@bucket/runs", "do not put credentials in the URI"),
    ("s3://no-such-bucket/runs?{query}", "not writable"),
])
def test_bad_storage_uri_is_one_line_and_writes_nothing(s3, tmp_path, uri, message):
    query = s3[0].split("?", 1)[1]
    res = _cli("run", "--trainer", "mlp", "--samples", "1", "--storage",
               uri.format(query=query), "--out", str(tmp_path / "r"))
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("hpsearch: error: ") and message in last
    assert "Traceback" not in res.stderr and "secret" not in res.stderr
    assert not (tmp_path / "r").exists()


_SECRET_SCRIPT = """
import glob, json, os, sys
from hpsearch import api
from hpsearch.search import cluster, run_search
temp_dir = cluster.connect(num_cpus=1)  # started with the credentials in its environment
cfg = api.search_config("mlp", fixed={"data": "digits"}, samples=2, max_epochs=1,
                        scheduler="fifo", storage=sys.argv[1], out=sys.argv[2])
run = run_search(cfg, stream=None)
secret = os.environ["AWS_SECRET_ACCESS_KEY"]
logs = [f for f in glob.glob(temp_dir + "/ray/session_*/logs/*") if os.path.isfile(f)]
leaked = [f for f in logs if secret in open(f, errors="replace").read()]
print(json.dumps({"status": sorted(set(run.trials["status"])), "logs": len(logs),
                  "leaked": leaked, "env_back": os.environ["AWS_SECRET_ACCESS_KEY"] == secret}))
cluster.shutdown(temp_dir)
"""


@pytest.mark.slow
def test_cloud_credentials_stay_out_of_ray_logs(s3, tmp_path):
    import uuid

    uri, _ = s3
    secret = f"hpsearch-secret-{uuid.uuid4().hex}"  # moto accepts any key
    env = {**os.environ, **CREDS, "AWS_SECRET_ACCESS_KEY": secret}
    res = subprocess.run([sys.executable, "-c", _SECRET_SCRIPT, uri, str(tmp_path / "secret")],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["status"] == ["completed"]  # the trials reached the bucket
    assert out["logs"] and out["leaked"] == [], out
    assert out["env_back"]  # the driver's environment is put back after the search
    token = Path.home() / ".ray" / "auth_token"
    if token.exists():
        assert token.stat().st_mode & 0o077 == 0
