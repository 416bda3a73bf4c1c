"""A private local Ray listens on loopback only, keeps token auth and runs no dashboard UI."""

import os

import pytest

from hpsearch.search import cluster

pytestmark = pytest.mark.slow


def test_local_ray_binds_loopback_only(ray_local):
    import psutil  # vendored by Ray

    ray = ray_local
    ray.get(ray.remote(lambda: 1).remote())  # start a worker too
    node = ray._private.worker._global_node
    assert node.node_ip_address == "127.0.0.1"
    pids = set(cluster._session_pids(node.get_session_dir_path())) | {os.getpid()}
    listening = [c.laddr.ip for c in psutil.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.pid in pids]
    assert listening
    assert all(ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for ip in listening), listening


def test_token_auth_on_and_no_dashboard_ui(ray_local):
    assert os.environ.get("RAY_AUTH_MODE", "token") != "disabled"
    ctx = ray_local._private.worker.global_worker.node.address_info
    assert not ctx.get("webui_url")
