"""Starting or joining Ray: a private local instance on 127.0.0.1 with no dashboard by
default, or an existing cluster by address (token auth stays as the cluster has it); and
shutting a private one down (processes.py finds what it is made of)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import tempfile
from pathlib import Path

import ray

from hpsearch.errors import UserError
from hpsearch.rundir import RunDir, layout
from hpsearch.search import reaper
from hpsearch.search.checks import check_cpus
from hpsearch.search.processes import (  # noqa: F401 (cluster's names since v0.2)
    TEMP_PREFIX,
    WORKER_TMP,
    WORKER_TMP_ENV,
    _instance_pids,
    _monitor_pids,
    cleanup_stale,
    end_instance,
    record_processes,
)

logger = logging.getLogger(__name__)
NO_GPU_MEMORY = ("--gpus-per-trial auto needs each GPU's memory and NVML found none "
                 "on the GPU nodes; pass --gpu-memory-mb MB")
# The watcher (reaper.py) of each private Ray this process started, by its temp dir.
_WATCHERS: dict = {}
# Ray's single-machine switch (the one Ray uses on macOS/Windows): every server on loopback.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def connect(address: str | None = None, num_cpus: int | None = None,
            num_gpus: int | None = None, dashboard: bool = False,
            verbose: bool = False, rundir: RunDir | None = None,
            cpus_per_trial: float | None = None) -> str | None:
    """Start a private local Ray bound to 127.0.0.1, or join the cluster at `address`.

    A local Ray is always a new one (`address="local"`): it never joins a cluster named by
    RAY_ADDRESS or recorded in Ray's temp directory. Its temp directory is private to it
    (0700, under the system temp dir), so what it started can be told apart later.

    Args:
        address: None for a private local instance; "auto" or "ray://HOST:PORT" to join.
        num_cpus, num_gpus: local instance only (tests fake GPUs with num_gpus).
        dashboard: start Ray's dashboard (local only; it binds to 127.0.0.1).
        verbose: let Ray log at INFO (default: nothing below CRITICAL).
        rundir: the run to record a local instance in (`record_processes`), before Ray
            starts: a driver killed while Ray starts leaves nothing `resume` cannot find.
        cpus_per_trial: a local instance with fewer CPUs than one trial asks for is
            refused (before it starts when the count is known, else once it has): Ray Tune
            would wait for ever for a trial it can never place.

    Returns:
        The private temp directory of a local Ray started here, else None.
    """
    if ray.is_initialized():
        return None
    # Quiet unless verbose: Ray's start-up lines, and Tune's tracebacks of trial failures
    # (hpsearch reports each failed trial's own error line instead).
    level = logging.INFO if verbose else logging.CRITICAL
    if address is None:
        if num_cpus is not None and num_cpus < 1:
            raise UserError(f"--num-cpus must be >= 1, got {num_cpus}")
        if num_gpus is not None and num_gpus < 0:
            raise UserError(f"--num-gpus must be >= 0, got {num_gpus}")
        if cpus_per_trial:  # Ray's own count is at most the machine's
            check_cpus(cpus_per_trial, num_cpus)
        # Ray makes its temp dir world-writable (0777); a 0700 parent keeps it private.
        temp_dir = tempfile.mkdtemp(prefix=TEMP_PREFIX)
        try:
            # The watcher first: a driver killed once the record is written always has one.
            # ends it if this process dies, after copying what Tune staged for the run
            _WATCHERS[temp_dir] = reaper.watch(
                temp_dir, os.path.abspath(rundir.path) if rundir is not None else None)
            if rundir is not None:
                record_processes(rundir, temp_dir)
            with _no_idle_workers(), _worker_tmp(temp_dir):
                ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus,
                         include_dashboard=dashboard, dashboard_host="127.0.0.1",
                         _node_ip_address="127.0.0.1", _temp_dir=os.path.join(temp_dir, "ray"),
                         log_to_driver=verbose, logging_level=level)
            _check_loopback()
            if cpus_per_trial:
                check_cpus(cpus_per_trial, ray.cluster_resources().get("CPU", 0))  # Ray's count
        except BaseException:  # nothing of a Ray that did not start stays behind
            shutdown(temp_dir)
            if rundir is not None:
                rundir.remove(layout.PROCESSES)
            raise
        _private_token()
        return temp_dir
    for attempt in range(3):
        try:
            ray.init(address=address, log_to_driver=verbose, logging_level=level)
            return None
        except ConnectionAbortedError as exc:
            # Ray Client's per-connection server sometimes fails to start; a new connection
            # gets a new one.
            if attempt == 2:
                raise UserError(f"cannot join Ray cluster at {address}: {_reason(exc)}") from None
            logger.warning("Ray Client connection failed (%s); retrying", _reason(exc))
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"cannot join Ray cluster at {address}: {_reason(exc)}") from None
    return None


@contextlib.contextmanager
def env_var(key: str, value: str, keep_users: bool = False):
    """`os.environ[key] = value` for the block, then as before (`keep_users`: a value
    already set wins)."""
    old = os.environ.get(key)
    if old is None or not keep_users:
        os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _no_idle_workers():
    """Ray starts one idle worker per CPU for the first driver; Tune's trial actors never
    use them (each actor gets a fresh worker), so they only cost start-up time (~1.5 CPU-s,
    0.4 s) and poll while idle. RAY_<setting> environment variables configure the Ray this
    process starts (its raylet reads them when spawned); a value the user set wins."""
    return env_var("RAY_prestart_worker_first_driver", "0", keep_users=True)


def _worker_tmp(temp_dir: str):
    """Trial workers stage each checkpoint in a temp folder until Tune has copied it; a
    worker killed meanwhile (its driver killed, then the Ray ended) leaves that folder, model
    weights included, in the system temp dir for good. Under the private temp dir it goes
    when the Ray is ended. The raylet, spawned in `ray.init`, passes the variable on to the
    workers."""
    path = os.path.join(temp_dir, WORKER_TMP)
    os.mkdir(path, 0o700)
    return env_var(WORKER_TMP_ENV, path)


def _check_loopback() -> None:
    """A private Ray must listen on loopback only. Ray resolves 127.0.0.1 to the machine's
    routable address unless its single-machine switch (LOOPBACK_ENV, read when ray is
    first imported) is set; hpsearch sets it before importing ray for a local run."""
    addresses = {n.get("NodeManagerAddress") for n in ray.nodes() if n.get("Alive")}
    if addresses - {"127.0.0.1"}:
        ray.shutdown()
        raise UserError("the local Ray would listen on a routable address: set "
                        f"{LOOPBACK_ENV}=0 before Python imports ray (the hpsearch CLI and "
                        "hpsearch.run do so when they import it first)")


def _private_token() -> None:
    """Ray writes ~/.ray/auth_token readable by everyone (0644); the token is the key to the
    cluster, so make it the owner's alone."""
    token = Path.home() / ".ray" / "auth_token"
    with contextlib.suppress(OSError):
        if token.stat().st_uid == os.getuid():
            token.chmod(0o600)


def _reason(exc: Exception) -> str:
    """The telling line of Ray's multi-line connection errors (not a 'Traceback' header)."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    useful = [x for x in lines if not x.startswith(("Traceback", "File ", "raise "))]
    if len(useful) > 1 and useful[0].endswith(":"):
        return f"{useful[0]} {useful[-1]}"
    return useful[0] if useful else type(exc).__name__


def is_multi_node() -> bool:
    """True when more than one alive node is in the cluster."""
    return sum(1 for n in ray.nodes() if n.get("Alive")) > 1


def concurrent_slots(cpus_per_trial: float, gpus_per_trial: float,
                     gpu_auto: bool = False) -> int:
    """How many trials fit at once in the cluster's total CPUs and GPUs (with `gpu_auto`
    the shares vary by config: CPUs bound the count, Ray queues what the GPUs cannot hold)."""
    res = ray.cluster_resources()
    slots = math.floor(res.get("CPU", 1) / cpus_per_trial + 1e-9)
    check_gpus(gpus_per_trial, gpu_auto)
    if gpus_per_trial > 0:
        slots = min(slots, math.floor(res.get("GPU", 0) / gpus_per_trial + 1e-9))
    return max(slots, 1)


def check_gpus(gpus_per_trial: float, gpu_auto: bool = False,
               gpus: float | None = None) -> None:
    """UserError when the cluster (or `gpus`, a local Ray's count) lacks the GPUs a trial
    asks for."""
    if gpus is None:
        gpus = ray.cluster_resources().get("GPU", 0)
    share = "auto" if gpu_auto else f"{gpus_per_trial:g}"
    if (gpu_auto or gpus_per_trial > 0) and gpus <= 0:
        raise UserError(f"--gpus-per-trial {share} but the cluster has no GPUs")
    if gpus < gpus_per_trial:
        raise UserError(f"--gpus-per-trial {share} but the cluster has {gpus:g} GPUs")


def _nvml_total_mb() -> float | None:
    """The smallest device memory NVML reports on this node (it ignores
    CUDA_VISIBLE_DEVICES, so it sees every GPU of the node); None without a driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        totals = [pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).total
                  for i in range(pynvml.nvmlDeviceGetCount())]
        return min(totals) / 2**20 if totals else None
    except Exception:  # NVMLError_LibraryNotFound on a node without a driver
        return None


def local_gpu_memory_mb(res, num_gpus: int | None) -> float | None:
    """Before a private local Ray starts, what is known of this machine's GPUs without it:
    `--num-gpus` is the count Ray will have, and NVML here reads the only node's memory.
    UserError for what would fail once Ray has started; the memory (MiB) packing divides by
    when it is needed and NVML reads it, else None (Ray's own probe decides)."""
    if num_gpus is not None:
        check_gpus(res.gpus_per_trial, res.gpu_auto, gpus=num_gpus)
    if not (res.uses_gpus and res.memory_packing) or res.gpu_memory_mb:
        return None
    found = _nvml_total_mb()
    if found is None and res.gpu_auto:
        if num_gpus:
            raise UserError(NO_GPU_MEMORY)
        raise UserError("--gpus-per-trial auto but NVML finds no GPUs on this machine "
                        "(pass --gpu-memory-mb MB for GPUs it cannot read)")
    return found


def gpu_memory_mb(timeout_s: float = 60.0) -> float | None:
    """Memory of the smallest GPU on any node with GPUs (MiB), read with NVML in a task on
    each such node; None when one of them reports none (fake GPUs, no driver)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0)(_nvml_total_mb)
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")
             and n.get("Resources", {}).get("GPU", 0) > 0]
    if not nodes:
        return None
    refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False))
            .remote() for n in nodes]
    try:
        totals = ray.get(refs, timeout=timeout_s)
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayError) as exc:
        logger.warning("could not read GPU memory on the cluster: %s", exc)
        return None
    return None if any(t is None for t in totals) else min(totals)


def shutdown(temp_dir: str | None) -> None:
    """Shut down the local Ray `connect` started (its `temp_dir`): Ray's own shutdown, then
    whatever of it outlives that (Ray's agents linger for a minute), then its temp dir.

    Its autoscaler monitor is killed first: Ray ends its processes one kind at a time, and
    the monitor ignores SIGTERM for the second Ray waits before SIGKILL (1.0 of the 1.4 s
    Ray's shutdown took; a local instance's monitor has nothing to save)."""
    for pid in _monitor_pids(temp_dir) if temp_dir else []:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    ray.shutdown()
    if temp_dir:
        end_instance(temp_dir)
        reaper.release(_WATCHERS.pop(temp_dir, None))
