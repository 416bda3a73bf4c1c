"""A private local Ray listens on loopback only, refuses clients without its token, runs no
dashboard, and is a new instance even when another cluster is advertised."""

import os
import subprocess
import sys
import tempfile

import pytest

pytestmark = pytest.mark.slow

_CONNECT = ("import ray, sys\n"
            "try:\n"
            "    ray.init(address=sys.argv[1], log_to_driver=False)\n"
            "    print('CONNECTED', ray.cluster_resources().get('CPU'))\n"
            "except Exception as exc:\n"
            "    print('REFUSED', type(exc).__name__)\n")


def test_local_ray_binds_loopback_only(ray_local):
    import psutil  # vendored by Ray

    ray = ray_local
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
    ray.get(ray.remote(lambda: 1).remote())  # start a worker too
    tmp = [p for p in os.listdir("/tmp") if p.startswith("hpsearch-ray-")]
    assert tmp, "the local Ray runs in a private hpsearch temp dir"
    from hpsearch.search import cluster

    pids = {os.getpid()}
    for name in tmp:
        pids |= set(cluster._instance_pids(f"/tmp/{name}"))  # noqa: SLF001
    listening = [c.laddr.ip for c in psutil.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.pid in pids]
    assert listening
    assert all(ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for ip in listening), listening


def test_client_without_token_is_refused_and_with_token_admitted(ray_local, tmp_path):
    gcs = ray_local.get_runtime_context().gcs_address
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH_TOKEN")}
    ok = subprocess.run([sys.executable, "-c", _CONNECT, gcs], env=env, capture_output=True,
                        text=True, timeout=120)
    assert "CONNECTED" in ok.stdout, ok.stdout + ok.stderr[-2000:]  # the owner's token works
    stranger = {**env, "HOME": str(tmp_path), "RAY_AUTH_MODE": "token"}
    bad = subprocess.run([sys.executable, "-c", _CONNECT, gcs], env=stranger,
                         capture_output=True, text=True, timeout=120)
    assert "REFUSED" in bad.stdout, bad.stdout + bad.stderr[-2000:]


def test_no_dashboard(ray_local):
    import urllib.request

    for port in (8265,):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=2)


def test_private_ray_prestarts_no_idle_workers_unless_the_user_asks(monkeypatch):
    """Tune's trial actors never use Ray's prestarted idle workers: a private Ray starts none
    (the setting holds while `ray.init` spawns the raylet), and a value the user set wins."""
    from hpsearch.search import cluster

    key = "RAY_prestart_worker_first_driver"
    monkeypatch.delenv(key, raising=False)
    with cluster._no_idle_workers():  # noqa: SLF001
        assert os.environ[key] == "0"
    assert key not in os.environ
    monkeypatch.setenv(key, "1")
    with cluster._no_idle_workers():  # noqa: SLF001
        assert os.environ[key] == "1"
    assert os.environ[key] == "1"


_SHUTDOWN = """
import json, os
from hpsearch.search import cluster
temp = cluster.connect(num_cpus=1)
monitors, pids = cluster._monitor_pids(temp), cluster._instance_pids(temp)
import ray
@ray.remote
def stage():  # a checkpoint folder as a trial worker killed mid-report leaves it
    import tempfile
    from hpsearch.search.trainable import _staging_dir
    return tempfile.mkdtemp(dir=_staging_dir())
staged = ray.get(stage.remote())
cluster.shutdown(temp)
alive = [p for p in pids if os.path.exists(f"/proc/{p}")]
print(json.dumps({"monitors": monitors, "pids": pids, "alive": alive,
                  "temp": temp, "temp_left": os.path.exists(temp), "staged": staged,
                  "staged_left": os.path.exists(staged), "env_left": "HPSEARCH_WORKER_TMP"
                  in os.environ}))
"""


def test_shutdown_ends_the_whole_private_instance_its_monitor_first():
    """`cluster.shutdown` kills the instance's autoscaler monitor before Ray's own shutdown
    (which waits a second on it otherwise), then leaves nothing of the instance behind, the
    checkpoint folders its trial workers staged included."""
    import json

    res = subprocess.run([sys.executable, "-c", _SHUTDOWN], capture_output=True, text=True,
                         timeout=120)
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(out["monitors"]) == 1, out  # Ray's monitor is still recognised by its script
    assert set(out["monitors"]) < set(out["pids"])
    assert out["alive"] == [] and not out["temp_left"], out
    # A trial worker's checkpoint staging folder is inside the instance's temp dir, so what
    # a killed worker leaves there goes with it (not into the system temp dir for good).
    assert out["staged"].startswith(out["temp"] + "/"), out
    assert not out["staged_left"] and not out["env_left"], out


def test_a_checkpoint_is_staged_where_the_worker_is_told(monkeypatch, tmp_path):
    """The trainable's reporter stages each checkpoint under the folder a private Ray names
    (HPSEARCH_WORKER_TMP), and removes it once Tune has taken it."""
    from hpsearch.rundir.layout import CHECKPOINT_STATE
    from hpsearch.search import trainable

    seen = []

    def report(row, checkpoint=None):
        seen.append((checkpoint.path, sorted(os.listdir(checkpoint.path))))

    monkeypatch.setattr(trainable.tune, "report", report)
    monkeypatch.setenv("HPSEARCH_WORKER_TMP", str(tmp_path))
    checkpointer = trainable.TuneCheckpointer()
    sink = trainable._reporter("val_metric", "max", checkpointer)  # noqa: SLF001
    checkpointer.save({"epoch": 1})
    sink({"epoch": 1, "val_metric": 0.5, "status": "running"})
    [(path, files)] = seen
    assert os.path.dirname(path) == str(tmp_path) and CHECKPOINT_STATE in files
    assert not os.listdir(tmp_path)  # removed after the report
    monkeypatch.setenv("HPSEARCH_WORKER_TMP", str(tmp_path / "gone"))  # not a folder: default
    checkpointer.save({"epoch": 2})
    sink({"epoch": 2, "val_metric": 0.5, "status": "running"})
    assert os.path.dirname(seen[-1][0]) == tempfile.gettempdir()
