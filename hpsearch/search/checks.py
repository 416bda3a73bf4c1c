"""Checking a search's inputs before Ray starts: trainer, space, fixed settings, metric and
points cross-checked on samples of the space. Ray-free and torch-free, so that the API can
refuse a bad input in a fraction of a second, before Ray Tune is imported."""

from __future__ import annotations

import os
import sys

from hpsearch import spaces, trainers
from hpsearch.config import SearchConfig, coerce_value
from hpsearch.errors import UserError

__all__ = ["BUILTIN_METRICS", "check_cpus", "validate"]

# What the built-in trainers report that a search can optimise (DESIGN.md schema).
BUILTIN_METRICS = ("val_metric", "val_loss", "train_loss", "train_metric", "gap")


def check_cpus(cpus_per_trial: float, cpus: float | None) -> None:
    """UserError when a local Ray with `cpus` CPUs (None: this machine's count, which Ray's
    own is at most) has fewer than one trial asks for: Ray Tune would wait for ever."""
    cpus = (os.cpu_count() or 1) if cpus is None else cpus
    if cpus_per_trial > cpus:
        raise UserError(f"--cpus-per-trial {cpus_per_trial:g} but the local Ray has {cpus:g} "
                        "CPUs (--num-cpus): no trial could start")


def validate(cfg: SearchConfig, grid: bool = False, num_cpus: int | None = None):
    """Resolve and cross-check trainer, space, fixed settings and points before Ray starts
    (and, for a private local Ray of `num_cpus` CPUs, the CPUs a trial asks for).

    Returns:
        (trainer, space).

    Raises:
        UserError: anything that would make every trial fail.
    """
    trainer = trainers.get(cfg.trainer)
    space = spaces.get(cfg.space)
    if space.trainer and ":" not in cfg.trainer and space.trainer != cfg.trainer:
        raise UserError(f"space {space.name!r} is for trainer {space.trainer!r}, "
                        f"not {cfg.trainer!r}")
    trainer.make_config(dict(cfg.fixed))  # unknown keys and bad values fail here, not in Ray
    samples = spaces.sample_configs(space.fn, n=16, seed=cfg.seed)
    spaces.check_keys(space, trainer.config_cls, cfg.fixed, samples)
    other = {v for v in [cfg.fixed.get("epochs"), *(s.get("epochs") for s in samples)]
             if v is not None and v != cfg.max_epochs}
    if other:  # a trial's epochs are the fidelity early stopping and the budget count in
        raise UserError(f"epochs={min(other, key=str)} is set (--set or the space), but a "
                        f"trial's epochs are --max-epochs ({cfg.max_epochs}): pass "
                        "--max-epochs instead")
    where = f"space {space.name!r}"
    for sample in samples:  # e.g. a YAML range that reaches lr <= 0, a fixed depth "abc"
        for key, value in sample.items():
            coerce_value(trainer.config_cls, key, value, where)
        sampled = trainer.make_config({**cfg.fixed, **sample}, where=where)
        trainers.check_runnable(sampled, local=False)
    if ":" not in cfg.trainer and cfg.metric not in BUILTIN_METRICS:
        raise UserError(f"--metric {cfg.metric!r} is not reported by trainer {cfg.trainer!r}; "
                        f"valid: {', '.join(BUILTIN_METRICS)}")
    if cfg.address is None:
        ray = sys.modules.get("ray")  # a Ray this process started already is the one used
        if ray is not None and ray.is_initialized():
            num_cpus = ray.cluster_resources().get("CPU", 0)
        check_cpus(cfg.resources.cpus_per_trial, num_cpus)
    if grid and not space.grid:
        raise UserError(f"space {space.name!r} defines no grid for --grid")
    for point in cfg.points:
        if not isinstance(point, dict):
            raise UserError("--points must be a list of mappings (one config each)")
        trainer.make_config({**cfg.fixed, **point})
        spaces.check_point(space, point)
    return trainer, space
