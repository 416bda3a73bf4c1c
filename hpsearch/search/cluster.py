"""Starting or joining Ray: a private local instance on 127.0.0.1 with no dashboard by
default, or an existing cluster by address (token auth stays as the cluster has it)."""

from __future__ import annotations

import logging
import math

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
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=dashboard,
                 _node_ip_address="127.0.0.1", dashboard_host="127.0.0.1",
                 log_to_driver=False, logging_level=logging.WARNING)
        return
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"cannot join Ray cluster at {address}: {str(exc).splitlines()[0]}") \
            from None


def is_multi_node() -> bool:
    """True when more than one alive node is in the cluster."""
    return sum(1 for n in ray.nodes() if n.get("Alive")) > 1


def concurrent_slots(cpus_per_trial: float, gpus_per_trial: float) -> int:
    """How many trials fit at once in the cluster's total CPUs and GPUs."""
    res = ray.cluster_resources()
    slots = math.floor(res.get("CPU", 1) / cpus_per_trial + 1e-9)
    if gpus_per_trial > 0:
        gpus = res.get("GPU", 0)
        if gpus < gpus_per_trial:
            raise UserError(f"--gpus-per-trial {gpus_per_trial} but the cluster has {gpus} GPUs")
        slots = min(slots, math.floor(gpus / gpus_per_trial + 1e-9))
    return max(slots, 1)
