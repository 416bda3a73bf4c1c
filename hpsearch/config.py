"""Search settings as frozen dataclasses, plus `parse_sets` for `--set key=value`."""

from __future__ import annotations

import ast
import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

from hpsearch.errors import UserError

__all__ = ["SchedulerConfig", "ResourcesConfig", "SearchConfig", "parse_sets", "checked_values",
           "coerce_value", "config_to_dict", "config_from_dict", "default_mode"]


SCHEDULERS = ("hyperband", "asha", "fifo")
# tpe: TPE fitted at one epoch (search/searcher.py); optuna-tpe: Optuna's TPE on the study.
SAMPLERS = ("tpe", "optuna-tpe", "random")


@dataclass(frozen=True)
class SchedulerConfig:
    """Early stopping. `kind="hyperband"`: ASHA brackets drawn by how well early epochs have
    ranked trials so far (search/schedulers.py, hpsearch/fidelity.py); `"asha"`: Ray Tune's
    ASHAScheduler alone; `"fifo"`: every trial runs all its epochs."""

    kind: str = "hyperband"
    grace_period: int = 1  # epochs; ASHA's max_t is SearchConfig.max_epochs
    reduction_factor: float = 3.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, "
                             f"got {self.kind!r}")
        if self.grace_period < 1:
            raise ValueError(f"grace period must be >= 1, got {self.grace_period}")
        if self.reduction_factor <= 1:
            raise ValueError(f"reduction factor must be > 1, got {self.reduction_factor}")


@dataclass(frozen=True)
class ResourcesConfig:
    """What one trial gets. Fractional GPUs let several small trials share a device."""

    cpus_per_trial: float = 1.0
    # A trial's GPU share. With memory packing it is the floor: a config whose estimated
    # memory needs more of the device gets more, so co-located trials never overfill it.
    gpus_per_trial: float = 0.0
    # None: derived from the cluster's free CPUs/GPUs. OptunaSearch keeps only one trial
    # pending without it, leaving slots idle.
    max_concurrent: int | None = None
    gpu_auto: bool = False  # --gpus-per-trial auto: the share is the memory estimate alone
    memory_packing: bool = True  # size GPU shares from each config's memory estimate
    gpu_memory_mb: float | None = None  # per GPU; None: read with NVML on the GPU nodes
    # Per trial process, outside torch's allocator: CUDA context, cuBLAS/cuDNN workspaces.
    gpu_overhead_mb: float = 512.0

    def __post_init__(self) -> None:
        if self.cpus_per_trial <= 0:
            raise ValueError(f"cpus per trial must be > 0, got {self.cpus_per_trial}")
        if self.gpus_per_trial < 0:
            raise ValueError(f"gpus per trial must be >= 0, got {self.gpus_per_trial}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError(f"max concurrent trials must be >= 1, got {self.max_concurrent}")
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise ValueError("gpus per trial above 1 must be a whole number, got "
                             f"{self.gpus_per_trial}")
        if self.gpu_auto and not self.memory_packing:
            raise ValueError("--gpus-per-trial auto needs memory packing")
        if self.gpu_memory_mb is not None and self.gpu_memory_mb <= 0:
            raise ValueError(f"GPU memory must be > 0 MB, got {self.gpu_memory_mb}")
        if self.gpu_overhead_mb < 0:
            raise ValueError(f"GPU overhead must be >= 0 MB, got {self.gpu_overhead_mb}")

    @property
    def uses_gpus(self) -> bool:
        return self.gpu_auto or self.gpus_per_trial > 0


@dataclass(frozen=True)
class SearchConfig:
    """One experiment: which trainer, which space, how many trials, where results go."""

    trainer: str
    space: str
    run_dir: str  # absolute path of runs/NAME; Ray Tune's storage_path is its parent
    samples: int = 16
    max_epochs: int = 10
    metric: str = "val_metric"
    mode: str | None = None  # None: `default_mode(metric, the trainer's MODE)`, at run time
    sampler: str = "tpe"  # one of SAMPLERS
    seed: int = 0
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    # Trainer Config fields held fixed for every trial (`--set`), e.g. {"data": "digits"}.
    fixed: dict = field(default_factory=dict)
    # Configs evaluated before sampling starts (`--points FILE`).
    points: tuple = ()
    address: str | None = None  # None: a private local Ray on 127.0.0.1
    # A directory every node of a multi-node cluster mounts (NFS, ...; run_dir lies in it),
    # or a cloud URI (s3://bucket/prefix): trials go to URI/NAME, run_dir stays local.
    storage: str | None = None
    max_failures: int = 2  # worker crashes retried from the last checkpoint
    study_name: str = ""
    # Stop the search once this many epochs were trained in all (`--budget-epochs`).
    budget_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, "
                             f"got {self.sampler!r}")
        if self.max_epochs < 1:
            raise ValueError(f"max epochs must be >= 1, got {self.max_epochs}")
        if self.scheduler.grace_period > self.max_epochs:
            raise ValueError(f"grace period must be in [1, max epochs={self.max_epochs}], "
                             f"got {self.scheduler.grace_period}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got {self.seed}")
        if self.budget_epochs is not None and self.budget_epochs < 1:
            raise ValueError(f"epoch budget must be >= 1, got {self.budget_epochs}")
        if self.budget_epochs is not None and self.budget_epochs < self.max_epochs:
            # Only a trial that trained every epoch is a search's answer (schedulers.py).
            raise ValueError(f"epoch budget {self.budget_epochs} is below max epochs "
                             f"{self.max_epochs}: no trial could train to the end")
        if self.max_failures < 0:
            raise ValueError(f"max failures must be >= 0, got {self.max_failures}")


LOSSES = ("val_loss", "train_loss", "gap")  # reported by every trainer; lower is better


def default_mode(metric: str, trainer_mode: str) -> str:
    """The direction a search optimises `metric` in when `--mode` is not given: "min" for a
    loss (val_loss, train_loss, gap = val - train loss, and any key ending in "loss"), else
    the trainer's MODE, which is the direction of its val_metric (train_metric is the same
    measure) and is taken for a plugin's own keys."""
    return "min" if metric in LOSSES or metric.endswith("loss") else trainer_mode


def coerce_value(cls: type, name: str, value: Any, where: str = "") -> Any:
    """Check `value` against dataclass field `name` of `cls`; return it converted.

    Args:
        cls: a dataclass type (a trainer's Config).
        name: field name.
        value: a Python value (already parsed).
        where: what the value came from, prefixed to the error message.

    Returns:
        The value, with int widened to float for float fields.

    Raises:
        UserError: unknown field or a value of the wrong type.
    """
    if cls is None:  # a plain-dict config: any value goes
        return value
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{where}: " if where else ""
    if name not in fields:
        raise UserError(f"{prefix}unknown setting {name!r}; valid: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    expected = hints.get(name, type(None))
    allowed = typing.get_args(expected) or (expected,)
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if value is None and type(None) in allowed:
        return None
    if any(isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in allowed
           if isinstance(t, type)):
        return value
    names = "|".join(getattr(t, "__name__", str(t)) for t in allowed)
    raise UserError(f"{prefix}setting {name}={value!r}: expected {names}, "
                    f"got {type(value).__name__}")


def parse_sets(cls: type | None, items) -> dict:
    """`key=value` strings (`--set`) as a dict of values checked against dataclass `cls`.

    Raises:
        UserError: a malformed item, an unknown key or a wrongly typed value.
    """
    changes = {}
    for item in items:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {item!r}")
        changes[key] = coerce_value(cls, key, parse_literal(raw.strip()))
    return changes


def checked_values(cls: type | None, values) -> dict:
    """Settings given as a mapping or as `key=value` strings, checked against dataclass
    `cls` (None: a plain-dict config, values taken as they are).

    Raises:
        UserError: a malformed item, an unknown key or a wrongly typed value.
    """
    if isinstance(values, Mapping):
        return {k: coerce_value(cls, k, v) for k, v in values.items()}
    if isinstance(values, str):  # one `key=value` (iterating it gave 'd', 'a', ...)
        values = [values]
    return parse_sets(cls, values or ())


def config_to_dict(cfg: SearchConfig) -> dict:
    """A SearchConfig as plain JSON-able data (what hpsearch.json records)."""
    return {**dataclasses.asdict(cfg), "points": list(cfg.points)}


def config_from_dict(values: dict) -> SearchConfig:
    """Rebuild a SearchConfig from `config_to_dict` output (extra keys ignored).

    Raises:
        UserError: the data does not describe a valid search.
    """
    keys = {f.name for f in dataclasses.fields(SearchConfig)}
    try:
        kw = {k: v for k, v in values.items() if k in keys}
        sched = {k: v for k, v in dict(kw.get("scheduler") or {}).items() if k != "max_t"}
        kw["scheduler"] = SchedulerConfig(**sched)
        kw["resources"] = ResourcesConfig(**dict(kw.get("resources") or {}))
        kw["points"] = tuple(kw.get("points") or ())
        kw["fixed"] = dict(kw.get("fixed") or {})
        return SearchConfig(**kw)
    except (TypeError, ValueError) as exc:
        raise UserError(f"the run's search settings are invalid: {exc}") from None


def parse_literal(raw: str) -> Any:
    """`ast.literal_eval`, falling back to the raw string for bare words like `adam`."""
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw
