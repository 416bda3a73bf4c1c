"""Multi-node placement with fake GPUs (`ray.cluster_utils.Cluster`), in a child process so
it gets its own Ray instance."""

import json
import subprocess
import sys
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

    out, gpus_per_trial = sys.argv[1], float(sys.argv[2])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 2,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=2, num_gpus=2)
    cluster.wait_for_nodes()
    base = dict(trainer="tests.search.gpu_probe_trainer:train",
                space="tests/search/probe_space.yaml", samples=4, max_epochs=2,
                scheduler=SchedulerConfig(kind="fifo", max_t=2), mode="max",
                resources=ResourcesConfig(cpus_per_trial=1, gpus_per_trial=gpus_per_trial),
                address=cluster.address, fixed={"sleep_s": 2.0})
    try:
        run_search(SearchConfig(run_dir="/tmp/hpsearch-not-shared/x", **base))
        local_ok = True
    except UserError as exc:
        local_ok = str(exc)
    run = run_search(SearchConfig(run_dir=out + "/run", storage=out, **base))
    print(json.dumps({"local": local_ok, "n": len(run.trials),
                      "rows": run.epochs[["trial_id", "node_id", "cuda_visible_devices"]]
                      .to_dict("records")}), flush=True)
    import os, ray
    ray.shutdown()
    cluster.shutdown()
    os._exit(0)  # Cluster teardown at interpreter exit can return 1 after a clean run
""")


@pytest.mark.parametrize("gpus_per_trial", [1.0, 0.5])
def test_trials_spread_over_two_nodes_with_their_gpus(tmp_path, gpus_per_trial):
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "run"),
                          str(gpus_per_trial)], capture_output=True, text=True, cwd=ROOT,
                         timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert "shared" in out["local"]  # multi-node with no --storage fails early
    assert out["n"] == 4
    rows = out["rows"]
    assert len({r["node_id"] for r in rows}) == 2  # both nodes ran trials
    for r in rows:  # each trial sees exactly one of its node's two fake GPUs
        assert r["cuda_visible_devices"] in {"0", "1"}
