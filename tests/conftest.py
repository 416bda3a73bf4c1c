"""Shared fixtures: a local Ray for the tests that share one (2 CPUs, 127.0.0.1, no dashboard)."""

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
# Every test Ray is local: its servers listen on loopback (set before ray is imported).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def _uses_ray_local(item) -> bool:
    return "ray_local" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items):
    """Tests on the shared Ray first, then those that run a real search (longest first is
    the usual rule for keeping parallel workers busy: `make test` is CPU-bound on 2 cores,
    and a search collected last ran alone at the end while the other workers idled).
    pytest-xdist hands each worker a contiguous share and steals from the ends of the
    shares, so the shared-Ray tests stay on the first worker: one Ray, not one idling in
    every worker all session (~0.04 CPU-s a second each)."""
    items.sort(key=lambda item: (not _uses_ray_local(item),
                                 item.get_closest_marker("slow") is None))


_RAY: dict = {}  # the temp dir of this process's shared Ray while it runs


@pytest.fixture
def ray_local():
    """A private Ray instance shared by consecutive tests that need one: started by the
    first, shut down after the last of a run of them (`pytest_runtest_teardown`), started
    again if a later test needs it."""
    import ray

    from hpsearch.search import cluster

    if "temp_dir" not in _RAY or not ray.is_initialized():
        _RAY["temp_dir"] = cluster.connect(num_cpus=2)
    return ray


def _stop_ray_local() -> None:
    if "temp_dir" in _RAY:
        from hpsearch.search import cluster

        cluster.shutdown(_RAY.pop("temp_dir"))


def pytest_runtest_teardown(item, nextitem):
    if nextitem is None or not _uses_ray_local(nextitem):
        _stop_ray_local()


def pytest_sessionfinish(session):
    _stop_ray_local()


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
