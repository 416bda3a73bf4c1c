"""Search-space registry. A space is `space(trial: optuna.Trial) -> dict` (define-by-run) in an
importable module, or a YAML file; its keys are fields of its trainer's Config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import optuna

from hpsearch.errors import UserError
from hpsearch.spaces import (
    adam_betas,
    lm_optimizers_depth,
    mlp_activations,
    mlp_optimizers,
    scales,
    vit_norm_depth,
)
from hpsearch.spaces.yaml_space import YamlSpace

__all__ = ["SPACES", "Space", "get", "with_fixed", "sample_configs", "check_keys", "default_for",
           "describe"]

SPACES: dict[str, ModuleType] = {
    "mlp_optimizers": mlp_optimizers,
    "mlp_activations": mlp_activations,
    "adam_betas": adam_betas,
    "lm_optimizers_depth": lm_optimizers_depth,
    "vit_norm_depth": vit_norm_depth,
}


# The space `hpsearch run --trainer NAME` searches when no --space is given.
DEFAULTS = {"mlp": "mlp_optimizers", "lm": "lm_optimizers_depth", "vit": "vit_norm_depth"}


def default_for(trainer: str) -> str:
    """The default space of a built-in trainer.

    Raises:
        UserError: the trainer has none (a user trainer needs --space).
    """
    if trainer not in DEFAULTS:
        raise UserError(f"trainer {trainer!r} has no default space; pass --space")
    return DEFAULTS[trainer]


@dataclass(frozen=True)
class Space:
    """A resolved space: the sampling function, the trainer it targets, its hand grid and
    the seed report it reproduces (built-in spaces)."""

    name: str
    fn: Callable[[optuna.Trial], dict]
    trainer: str | None
    grid: dict | None
    doc: str
    report: str = ""


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
    return Space(name, mod.space, getattr(mod, "TRAINER", None), getattr(mod, "GRID", None), doc,
                 getattr(mod, "REPORT", ""))


def with_fixed(trial: optuna.Trial, space_fn: Callable, fixed: dict) -> dict:
    """Sample `space_fn` and add the fixed settings. Module-level, so a
    `functools.partial` of it pickles by reference for Tuner.restore."""
    return {**fixed, **space_fn(trial)}


def sample_configs(space_fn: Callable, n: int = 8, seed: int = 0) -> list[dict]:
    """`n` random samples of a space (conditional branches included), then one sample with
    each numeric parameter at its low and at its high bound, as dicts."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out: list[dict] = []
    dists: dict = {}

    def draw() -> None:
        trial = study.ask()
        try:
            config = space_fn(trial)
        except (TypeError, ValueError) as exc:
            raise UserError(f"the space cannot be sampled: {exc}") from None
        if not isinstance(config, dict):
            raise UserError("a space function must return a dict of Config fields")
        dists.update(trial.distributions)
        out.append(config)
        study.tell(trial, 0.0)

    for _ in range(n):
        draw()
    for name, d in list(dists.items()):
        if not isinstance(d, optuna.distributions.CategoricalDistribution):
            for bound in (d.low, d.high):
                study.enqueue_trial({name: bound})
                draw()
    return out


def check_keys(space: Space, config_cls: type, fixed: dict[str, Any],
               samples: list[dict] | None = None) -> None:
    """Every key a space yields must be a Config field, and none may also be fixed."""
    keys: set[str] = set()
    for config in samples if samples is not None else sample_configs(space.fn):
        keys |= set(config)
    fields = {f.name for f in dataclasses.fields(config_cls)} if config_cls else keys
    unknown = sorted(keys - fields)
    if unknown:
        raise UserError(f"space {space.name!r} sets {', '.join(unknown)}, which the trainer's "
                        f"Config does not have; valid: {', '.join(sorted(fields))}")
    both = sorted(keys & set(fixed) - {"epochs"})
    if both:
        raise UserError(f"{', '.join(both)} is both searched by space {space.name!r} and fixed "
                        "with --set; drop one")


def _range(d) -> str:
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return "one of " + ", ".join(map(str, d.choices))
    kind = "float" if isinstance(d, optuna.distributions.FloatDistribution) else "int"
    scale = ", log scale" if d.log else (f", step {d.step:g}" if d.step not in (None, 1) else "")
    return f"{kind} from {d.low:g} to {d.high:g}{scale}"


def check_point(space: Space, point: dict) -> None:
    """A `--points` config must lie in the space: the search's model is fitted on every
    trial, and a value outside its parameter's range (or choices) stopped the search with
    Optuna's ValueError once the model learned from it.

    Raises:
        UserError: naming the parameter, the value and the space's range.
    """
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    study.enqueue_trial(scales.optuna_point(point))
    trial = study.ask()
    with warnings.catch_warnings():  # Optuna warns of the value it is about to take
        warnings.simplefilter("ignore")
        try:
            space.fn(trial)
        except ValueError as exc:  # a choice the space does not have: "'12' not in (8, 16)"
            raise UserError(f"--points: {point} does not fit space {space.name!r}: "
                            f"{str(exc).rstrip('.')}; widen the space or drop the point"
                            ) from None
    for name, d in trial.distributions.items():
        try:  # Optuna's own check of a value against its distribution
            optuna.trial.create_trial(params={name: trial.params[name]},
                                      distributions={name: d}, value=0.0)
        except ValueError:
            shown = scales.one_minus_of(name)
            value, text = ((point.get(shown), f"float from {1 - d.high:g} to {1 - d.low:g}")
                           if shown else (trial.params[name], _range(d)))
            raise UserError(f"--points: {shown or name}={value!r} is outside space "
                            f"{space.name!r} ({text}); widen the space or drop the point"
                            ) from None


def describe(space: Space, n: int = 64) -> dict[str, str]:
    """Each parameter of `space` in plain words: its range or choices, its scale, and when it
    is only sampled under a condition (e.g. beta1 only when optimizer is adam or adamw)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    dists: dict = {}
    seen: list[dict] = []
    for _ in range(n):
        trial = study.ask()
        space.fn(trial)
        dists.update(trial.distributions)
        seen.append(dict(trial.params))
        study.tell(trial, 0.0)
    out = {}
    categorical = [k for k, d in dists.items()
                   if isinstance(d, optuna.distributions.CategoricalDistribution)]
    for name, d in dists.items():
        text = _range(d)
        shown = scales.one_minus_of(name)
        if shown is not None:  # sampled as log(1 - value): described in the config's terms
            text = f"float from {1 - d.high:g} to {1 - d.low:g}, log scale of 1 - {shown}"
        present = [p for p in seen if name in p]
        if len(present) < len(seen):
            for parent in categorical:
                when = sorted({str(p[parent]) for p in present if parent in p})
                if parent != name and len(when) < len(dists[parent].choices):
                    text += f"; only when {parent} is {' or '.join(when)}"
                    break
            else:
                text += "; only in some configs"
        out[shown or name] = text
    return out
