"""Search-space registry. A space is `space(trial: optuna.Trial) -> dict` (define-by-run) in an
importable module, or a YAML file; its keys are fields of its trainer's Config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import optuna

from hpsearch.errors import UserError
from hpsearch.spaces import adam_betas, lm_optimizers_depth, mlp_optimizers, vit_norm_depth
from hpsearch.spaces.yaml_space import YamlSpace

__all__ = ["SPACES", "Space", "get", "with_fixed", "sample_keys", "check_keys"]

SPACES: dict[str, ModuleType] = {
    "mlp_optimizers": mlp_optimizers,
    "adam_betas": adam_betas,
    "lm_optimizers_depth": lm_optimizers_depth,
    "vit_norm_depth": vit_norm_depth,
}


@dataclass(frozen=True)
class Space:
    """A resolved space: the sampling function, the trainer it targets and its hand grid."""

    name: str
    fn: Callable[[optuna.Trial], dict]
    trainer: str | None
    grid: dict | None
    doc: str


def get(name: str) -> Space:
    """Resolve a registry key or a path to a `.yaml`/`.yml` space file.

    Raises:
        UserError: unknown name or an invalid YAML space.
    """
    if name.endswith((".yaml", ".yml")):
        ys = YamlSpace(name)
        return Space(name, ys, ys.trainer, ys.grid, f"YAML space {name}")
    if name not in SPACES:
        raise UserError(f"unknown space {name!r}; valid: {', '.join(sorted(SPACES))} "
                        "or a .yaml file")
    mod = SPACES[name]
    doc = (mod.__doc__ or "").strip().splitlines()[0] if mod.__doc__ else ""
    return Space(name, mod.space, getattr(mod, "TRAINER", None), getattr(mod, "GRID", None), doc)


def with_fixed(trial: optuna.Trial, space_fn: Callable, fixed: dict) -> dict:
    """Sample `space_fn` and add the fixed settings. Module-level, so a
    `functools.partial` of it pickles by reference for Tuner.restore."""
    return {**fixed, **space_fn(trial)}


def sample_keys(space_fn: Callable, n: int = 8, seed: int = 0) -> set[str]:
    """Keys a space produces, over `n` random samples (conditional branches included)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    keys: set[str] = set()
    for _ in range(n):
        trial = study.ask()
        out = space_fn(trial)
        if not isinstance(out, dict):
            raise UserError("a space function must return a dict of Config fields")
        keys |= set(out)
        study.tell(trial, 0.0)
    return keys


def check_keys(space: Space, config_cls: type, fixed: dict[str, Any]) -> None:
    """Every key a space yields must be a Config field, and none may also be fixed."""
    fields = {f.name for f in dataclasses.fields(config_cls)}
    keys = sample_keys(space.fn)
    unknown = sorted(keys - fields)
    if unknown:
        raise UserError(f"space {space.name!r} sets {', '.join(unknown)}, which the trainer's "
                        f"Config does not have; valid: {', '.join(sorted(fields))}")
    both = sorted(keys & set(fixed) - {"epochs"})
    if both:
        raise UserError(f"{', '.join(both)} is both searched by space {space.name!r} and fixed "
                        "with --set; drop one")
