"""Multi-node placement with fake GPUs (`ray.cluster_utils.Cluster`), in a child process so
it gets its own Ray instance: fixed GPU shares with a shared directory, and memory-packed
shares with the trials kept in an S3 bucket (a local moto server)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, sys
    from ray.cluster_utils import Cluster
    from hpsearch.config import ResourcesConfig, SchedulerConfig, SearchConfig
    from hpsearch.search import run_search
    from hpsearch.errors import UserError

    out, specs = sys.argv[1], json.loads(sys.argv[2])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 2,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=2, num_gpus=2)
    cluster.wait_for_nodes()
    for i, spec in enumerate(specs):  # one after another on the same two nodes
        base = dict(trainer=spec["trainer"], space=spec["space"], samples=4, max_epochs=2,
                    scheduler=SchedulerConfig(kind="fifo"), mode="max",
                    resources=ResourcesConfig(cpus_per_trial=1, **spec["resources"]),
                    address=cluster.address, fixed=spec["fixed"],
                    points=tuple(spec["points"]))
        try:
            run_search(SearchConfig(run_dir=f"/tmp/hpsearch-not-shared/x{i}", **base))
            local_ok = True
        except UserError as exc:
            local_ok = str(exc)
        storage = spec.get("storage") or f"{out}/{i}"
        run = run_search(SearchConfig(run_dir=f"{out}/{i}/run", storage=storage, **base))
        cols = [c for c in ("trial_id", "node_id", "cuda_visible_devices", "assigned_gpu")
                if c in run.epochs]
        print(json.dumps({"local": local_ok, "n": len(run.trials),
                          "rows": run.epochs[cols].to_dict("records")}), flush=True)
    import os, ray
    ray.shutdown()
    cluster.shutdown()
    os._exit(0)  # Cluster teardown at interpreter exit can return 1 after a clean run
""")


@pytest.fixture
def ray_tmp():
    """The test cluster's Ray temp root (Ray's RAY_TMPDIR: its sessions and the address file
    go under it): short (Ray's socket paths), and removed after the test instead of left in
    /tmp/ray with every other Ray session's logs."""
    path = tempfile.mkdtemp(prefix="hpt-ray-", dir="/tmp")
    yield {"RAY_TMPDIR": path}
    shutil.rmtree(path, ignore_errors=True)


def _run(tmp_path, specs, env):
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "run"), json.dumps(specs)],
                         capture_output=True, text=True, cwd=ROOT, timeout=400,
                         env={**os.environ, **env})
    assert res.returncode == 0, res.stderr[-3000:]
    outs = [json.loads(x) for x in res.stdout.strip().splitlines() if x.startswith("{")]
    assert len(outs) == len(specs), res.stdout
    for out in outs:
        assert "shared" in out["local"]  # multi-node with no --storage fails early
        assert out["n"] == 4
        assert len({r["node_id"] for r in out["rows"]}) == 2  # both nodes ran trials
        for r in out["rows"]:  # each trial sees exactly one of its node's two fake GPUs
            assert r["cuda_visible_devices"] in {"0", "1"}
    return outs


def test_fixed_and_memory_packed_gpu_shares_on_two_nodes(tmp_path, ray_tmp):
    """One two-node cluster with two fake GPUs each, two searches in turn: fixed half-GPU
    shares with a shared directory (whole GPUs: test_packing, Ray itself), then
    memory-packed shares with the trials kept in an S3 bucket."""
    from tests.search.s3_server import CREDS, moto_bucket

    with moto_bucket("cluster") as (uri, _):
        _, packed = _run(tmp_path, [
            {"trainer": "tests.search.gpu_probe_trainer:train",
             "space": "tests/search/probe_space.yaml", "fixed": {"sleep_s": 2.0},
             "points": [], "resources": {"gpus_per_trial": 0.5}},
            {"trainer": "tests.search.mem_probe_trainer:train",
             "space": "tests/search/width_space.yaml", "fixed": {"sleep_s": 2.0},
             "points": [{"width": 4096}, {"width": 4096}, {"width": 16}, {"width": 16}],
             "resources": {"gpus_per_trial": 0.0, "gpu_auto": True, "gpu_memory_mb": 1000.0,
                           "gpu_overhead_mb": 100.0},
             "storage": uri}], {**CREDS, **ray_tmp})
    assert (tmp_path / "run" / "0" / "run" / "trials.csv").exists()  # in the shared dir
    shares = {r["assigned_gpu"] for r in packed["rows"]}
    assert len(shares) == 2 and max(shares) > 0.5 > min(shares)  # shares follow the estimate
    assert (tmp_path / "run" / "1" / "run" / "trials.csv").exists()  # pulled from the bucket


CLIENT_SCRIPT = textwrap.dedent("""
    import json, socket, sys
    from ray.cluster_utils import Cluster
    from hpsearch.cli import main

    out = sys.argv[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "include_dashboard": False, "ray_client_server_port": port})
    cluster.wait_for_nodes()
    args = ["run", "--address", f"ray://127.0.0.1:{port}", "--trainer",
            "tests.search.curves_trainer:train", "--space", "tests/search/curves_space.yaml",
            "--samples", "2", "--max-epochs", "1"]
    no_storage = main([*args, "--out", out + "/local"])
    shared = main([*args, "--storage", out + "/shared", "--out", "run"])
    print(json.dumps({"no_storage": no_storage, "shared": shared}), flush=True)
    import os, ray
    ray.shutdown()
    cluster.shutdown()
    os._exit(0)
""")


def test_ray_client_address_needs_a_shared_run_directory(tmp_path, ray_tmp):
    # Ray Client gives up after ~35 s by default; the head's client server can take longer
    # to start its per-client process while the rest of the suite loads this machine.
    # GRPC_ENABLE_FORK_SUPPORT=0: the head's client proxy forks that process while its own
    # gRPC threads are busy ("skipping fork() handlers"); the child logged an epoll_wait on a
    # bad fd, died at once ("SpecificServer startup failed" in ray_client_server.err) and the
    # client waited ~30 s to retry (76 s under load; 45-68 s without the failure, 16 s idle).
    env = {**os.environ, **ray_tmp, "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "30",
           "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": "120", "GRPC_ENABLE_FORK_SUPPORT": "0"}
    res = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT, str(tmp_path)], env=env,
                         capture_output=True, text=True, cwd=ROOT, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out == {"no_storage": 2, "shared": 0}, res.stderr[-3000:]
    assert "through ray:// Tune runs on the head node" in res.stderr
    assert not (tmp_path / "local").exists()
    trials = (tmp_path / "shared" / "run" / "trials.csv").read_text().splitlines()
    assert len(trials) == 3  # header + 2 trials, written by the remote Tune driver's results
