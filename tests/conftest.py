"""Shared fixtures: one local Ray for the session (2 CPUs, 127.0.0.1, no dashboard)."""

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Every test Ray is local: its servers listen on loopback (set before ray is imported).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def pytest_collection_modifyitems(items):
    """Tests that run a real search first (longest first is the usual rule for keeping
    parallel workers busy): `make test` is CPU-bound on 2 cores, and a search collected last
    ran alone at the end while the other workers idled."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def ray_local():
    """A private Ray instance, shared by every test that needs one."""
    import ray

    from hpsearch.search import cluster

    temp_dir = cluster.connect(num_cpus=2)
    yield ray
    cluster.shutdown(temp_dir)


class MemoryCheckpointer:
    """In-memory stand-in for the Tune checkpointer."""

    def __init__(self, state=None):
        self.state = state
        self.saves = 0

    def load(self):
        return self.state

    def save(self, state):
        import copy

        self.state = copy.deepcopy(state)
        self.saves += 1


@pytest.fixture
def memory_checkpointer():
    return MemoryCheckpointer
