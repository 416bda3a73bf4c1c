"""Starting or joining Ray: a private local instance on 127.0.0.1 with no dashboard by
default, or an existing cluster by address (token auth stays as the cluster has it)."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from pathlib import Path

import ray

from hpsearch.errors import UserError

logger = logging.getLogger(__name__)


def connect(address: str | None = None, num_cpus: int | None = None,
            num_gpus: int | None = None, dashboard: bool = False) -> None:
    """Start a local Ray bound to 127.0.0.1, or join the cluster at `address`.

    Args:
        address: None for a private local instance; "auto" or "ray://HOST:PORT" to join.
        num_cpus, num_gpus: local instance only (tests fake GPUs with num_gpus).
        dashboard: start Ray's dashboard (local only; it binds to 127.0.0.1).
    """
    if ray.is_initialized():
        return
    if address is None:
        _bind_loopback()
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=dashboard,
                 _node_ip_address="127.0.0.1", dashboard_host="127.0.0.1",
                 log_to_driver=False, logging_level=logging.WARNING)
        return
    for attempt in range(3):
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            return
        except ConnectionAbortedError as exc:
            # Ray Client's per-connection server sometimes fails to start; a new connection
            # gets a new one.
            if attempt == 2:
                raise UserError(f"cannot join Ray cluster at {address}: {_reason(exc)}") from None
            logger.warning("Ray Client connection failed (%s); retrying", _reason(exc))
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"cannot join Ray cluster at {address}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """The telling line of Ray's multi-line connection errors (not a 'Traceback' header)."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    useful = [x for x in lines if not x.startswith(("Traceback", "File ", "raise "))]
    if len(useful) > 1 and useful[0].endswith(":"):
        return f"{useful[0]} {useful[-1]}"
    return useful[0] if useful else type(exc).__name__


def _bind_loopback() -> None:
    """Make a private local Ray listen on 127.0.0.1 only.

    Ray turns `_node_ip_address="127.0.0.1"` into the machine's routable IP and then binds its
    gRPC servers to it (and '::'). Its single-machine mode (the switch Ray uses on macOS and
    Windows) keeps every server on loopback; children inherit it through the environment.
    """
    from ray._private import ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


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


def check_gpus(gpus_per_trial: float, gpu_auto: bool = False) -> None:
    """UserError when the cluster lacks the GPUs a trial asks for."""
    gpus = ray.cluster_resources().get("GPU", 0)
    share = "auto" if gpu_auto else gpus_per_trial
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


PROCESS_FILE = "ray_processes.json"


def record_processes(run_dir) -> None:
    """Write the local Ray's daemon pids into the run dir, so that `hpsearch resume` can end
    what a killed driver left behind. Joined clusters are not ours to record."""
    node = getattr(ray._private.worker, "_global_node", None)  # noqa: SLF001
    if node is None:
        return
    pids = {kind: [p.process.pid for p in procs if p.process is not None]
            for kind, procs in node.all_processes.items()}
    # Agents and workers start later and rewrite their command lines; what ties them to this
    # run is the session directory their log files live in.
    record = {"pids": pids, "session_dir": node.get_session_dir_path()}
    (Path(run_dir) / PROCESS_FILE).write_text(json.dumps(record))


def _session_pids(session_dir: str) -> list[int]:
    """Pids of processes holding a file open inside `session_dir`."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            if any(os.readlink(f"/proc/{entry}/fd/{fd}").startswith(session_dir) for fd in fds):
                out.append(int(entry))
        except OSError:
            continue
    return out


def _is_ray_process(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ")
    except OSError:
        return False
    return b"ray" in cmd


def cleanup_stale(run_dir, timeout_s: float = 5.0) -> list[int]:
    """End the Ray daemons a killed driver of this run left running (by recorded pid, and
    only if the pid still belongs to a Ray process). Returns the pids signalled."""
    path = Path(run_dir) / PROCESS_FILE
    if not path.exists():
        return []
    try:
        record = json.loads(path.read_text())
        pids = [pid for group in record["pids"].values() for pid in group]
        session_dir = record.get("session_dir") or ""
    except (ValueError, KeyError, AttributeError, TypeError):
        return []
    found = set(pids) | (set(_session_pids(session_dir)) if session_dir.startswith("/") else set())
    alive = sorted(pid for pid in found if _is_ray_process(pid))
    for pid in alive:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_is_ray_process(p) for p in alive):
        time.sleep(0.1)
    for pid in alive:
        if _is_ray_process(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if alive:
        logger.warning("ended %d Ray processes left by the interrupted run", len(alive))
    path.unlink(missing_ok=True)
    return alive
