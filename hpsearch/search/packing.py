"""Memory-aware GPU packing: each trial asks Ray for the GPU share its config's memory needs
(`tune.with_resources` with a per-config callable), so Ray never co-locates trials whose
memory would overfill a device. The need is the fake-tensor estimate until a trial of the
same shape has measured its peak on a GPU; from then on (resumes included) the measured peak.
`PackingLog` records share and estimate, and the measured peaks per shape."""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path

from ray import tune
from ray.tune import PlacementGroupFactory

from hpsearch import trainers
from hpsearch.config import ResourcesConfig
from hpsearch.rundir import RunDir, layout
from hpsearch.trainers import memory
from hpsearch.trainers.memory import per_trial_mb

logger = logging.getLogger(__name__)
__all__ = ["PackingLog", "gpu_share", "estimate_mb", "per_trial_mb", "resources_for",
           "trial_resources", "read_measured"]

_STEP = 0.01  # shares are whole hundredths of a GPU


def _trainer_config(trainer_name: str, config: dict):
    """(trainer, its Config) from a Tune trial config (extra keys dropped)."""
    trainer = trainers.get(trainer_name)
    return trainer, trainer.make_config({k: v for k, v in config.items()
                                         if trainer.has_field(k)})


def estimate_mb(trainer_name: str, config: dict) -> float | None:
    """Estimated peak torch memory (MiB) of `config`, or None when the trainer cannot say."""
    trainer = trainers.get(trainer_name)
    if trainer.module is None or not memory.supports(trainer.module):
        return None
    try:
        _, cfg = _trainer_config(trainer_name, config)
        return memory.estimate(trainer.module, cfg).total_mb
    except Exception as exc:  # an estimate must never stop a search: fall back to the floor
        logger.warning("memory estimate failed for %s: %s", config, exc)
        return None


def _shape(trainer_name: str, config: dict) -> str | None:
    try:
        return memory.shape_key(_trainer_config(trainer_name, config)[1])
    except Exception:  # a config the trainer rejects fails in its trial, not here
        return None


def read_measured(run_dir: str | Path) -> dict[str, float]:
    """Peak GPU memory measured so far per config shape (empty before any GPU trial)."""
    measured = RunDir(run_dir).read_json(layout.MEASURED, {})
    return measured if isinstance(measured, dict) else {}


def memory_need_mb(trainer_name: str, config: dict,
                   run_dir: str | Path | None = None) -> tuple[float | None, str]:
    """What a trial of `config` will hold: the peak a trial of the same shape measured in
    this run, else the estimate. Returns (MiB or None, "measured" | "estimate")."""
    if run_dir is not None:
        key = _shape(trainer_name, config)
        measured = read_measured(run_dir).get(key) if key else None
        if measured is not None:
            return float(measured), "measured"
    return estimate_mb(trainer_name, config), "estimate"


def gpu_share(estimate: float | None, res: ResourcesConfig, gpu_memory_mb: float | None) -> float:
    """The GPU share a trial with `estimate` MiB asks for.

    The need is (estimate x (1 + MARGIN) + per-process overhead) / device memory, rounded up
    to a hundredth; the fixed `gpus_per_trial` is the floor (`gpu_auto`: no floor). A need of
    a whole device or more asks for exactly 1 GPU (the trainers use one device).
    """
    floor = 0.0 if res.gpu_auto else res.gpus_per_trial
    if not res.memory_packing or estimate is None or not gpu_memory_mb:
        return floor if floor > 0 else (1.0 if res.gpu_auto else 0.0)
    per_trial = per_trial_mb(estimate, res.gpu_overhead_mb)
    need = math.ceil(per_trial / gpu_memory_mb / _STEP - 1e-9) * _STEP
    if need > 1:
        logger.warning("a config needs about %.0f MB (estimate %.0f MB + margin + overhead), "
                       "more than one GPU's %.0f MB: it gets a whole GPU and may run out of "
                       "memory", per_trial, estimate, gpu_memory_mb)
    return max(floor, min(round(need, 4), 1.0))


def trial_resources(config: dict, *, trainer_name: str, res: ResourcesConfig,
                    gpu_memory_mb: float | None,
                    run_dir: str | None = None) -> PlacementGroupFactory:
    """Tune's per-trial resource callable (module-level, so experiment state pickles it)."""
    share = res.gpus_per_trial
    if res.uses_gpus and res.memory_packing:
        need, _ = memory_need_mb(trainer_name, config, run_dir)
        share = gpu_share(need, res, gpu_memory_mb)
    return PlacementGroupFactory([{"CPU": res.cpus_per_trial, "GPU": share}])


def resources_for(trainer_name: str, res: ResourcesConfig, gpu_memory_mb: float | None,
                  run_dir: str | None = None):
    """What `tune.with_resources` gets: a fixed dict, or the per-config callable (which reads
    the peaks measured so far from `run_dir`)."""
    if not (res.uses_gpus and res.memory_packing):
        return {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial}
    return functools.partial(trial_resources, trainer_name=trainer_name, res=res,
                             gpu_memory_mb=gpu_memory_mb, run_dir=run_dir)


class PackingLog(tune.Callback):
    """Appends trial_id, GPU share, memory need and its source to runs/NAME/packing.csv as
    trials start (the analysis' estimate-vs-actual table), and keeps the largest
    `gpu_mem_mb` each config shape reported in runs/NAME/memory_measured.json."""

    def __init__(self, run_dir: str | Path, trainer_name: str) -> None:
        self.run_dir = Path(run_dir)
        self.rd = RunDir(run_dir)
        self.trainer_name = trainer_name
        self.seen: set[str] = set()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if trial.trial_id in self.seen:
            return
        self.seen.add(trial.trial_id)
        share = trial.placement_group_factory.required_resources.get("GPU", 0.0)
        est = estimate_mb(self.trainer_name, trial.config)  # cached: computed for the share
        _, source = memory_need_mb(self.trainer_name, trial.config, self.run_dir)
        self.rd.append_row(layout.PACKING,
                           ["trial_id", "gpu_share", "gpu_mem_mb_estimate", "share_from"],
                           [trial.trial_id, share, "" if est is None else round(est, 1), source])

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        peak = result.get("gpu_mem_mb")
        if not isinstance(peak, (int, float)) or not math.isfinite(peak) or peak <= 0:
            return  # CPU trials measure nothing
        key = _shape(self.trainer_name, trial.config)
        measured = read_measured(self.run_dir)
        if key is None or measured.get(key, 0.0) >= peak:
            return
        measured[key] = float(peak)
        self.rd.write_json(layout.MEASURED, measured)  # atomic: the callable never reads half
