"""Search spaces written as YAML, validated up front, sampled define-by-run.

    trainer: mlp                      # optional: the trainer this space is for
    params:
      optimizer: {type: categorical, choices: [sgd, adam]}
      lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
      beta1: {type: float, low: 0.5, high: 0.99, when: {optimizer: [adam]}}
      beta2: {type: float, low: 0.9, high: 0.9999, log: one_minus, when: {optimizer: [adam]}}
      depth: {type: int, low: 1, high: 4, step: 1}
    fixed: {data: digits}             # optional constants for every trial
    grid: {depth: [1, 2, 4]}          # optional hand grid for --grid

`log: one_minus` samples 1 - value log-uniformly (`scales.suggest_one_minus`): for
parameters near 1, such as Adam's beta2 or momentum.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import yaml

from hpsearch.errors import UserError
from hpsearch.spaces.scales import suggest_one_minus

__all__ = ["YamlSpace", "safe_load_file"]

_TOP_KEYS = {"trainer", "params", "fixed", "grid"}
_MAX_BYTES = 1 << 20  # a space, a points list or an exported config is kilobytes


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases: a few hundred bytes of nested aliases
    expand to gigabytes (a "billion laughs" document)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases (*name) are not allowed")
        return super().compose_node(parent, index)


def safe_load_file(path: str | Path) -> Any:
    """Read a YAML/JSON file safely (no Python tags, no aliases, at most 1 MiB).

    Raises:
        UserError: a missing, too large or malformed file, in one line.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"file not found: {path}")
    if p.stat().st_size > _MAX_BYTES:
        raise UserError(f"{path}: larger than {_MAX_BYTES >> 20} MiB")
    try:
        return yaml.load(p.read_text(), Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: malformed YAML/JSON{where}: {problem}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file") from None
_SPEC_KEYS = {"float": {"type", "low", "high", "log", "step", "when"},
              "int": {"type", "low", "high", "log", "step", "when"},
              "categorical": {"type", "choices", "when"}}


class YamlSpace:
    """A validated YAML space; calling it with an Optuna trial samples one config."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        doc = _load(Path(path))
        self.trainer: str | None = doc.get("trainer")
        self.params: dict[str, dict] = {k: _validate(self.path, k, v, doc["params"])
                                        for k, v in doc["params"].items()}
        self.fixed: dict = dict(doc.get("fixed") or {})
        self.grid: dict | None = doc.get("grid")

    def __call__(self, trial: optuna.Trial) -> dict:
        out: dict[str, Any] = dict(self.fixed)
        for name, spec in self.params.items():
            when = spec.get("when") or {}
            if any(out.get(k) not in v for k, v in when.items()):
                continue  # conditional parameter whose parent took another value
            kind = spec["type"]
            if kind == "categorical":
                out[name] = trial.suggest_categorical(name, spec["choices"])
            elif kind == "float" and spec.get("log") == "one_minus":
                out[name] = suggest_one_minus(trial, name, spec["low"], spec["high"])
            elif kind == "float":
                out[name] = trial.suggest_float(name, spec["low"], spec["high"],
                                                log=spec.get("log", False), step=spec.get("step"))
            else:
                out[name] = trial.suggest_int(name, spec["low"], spec["high"],
                                              log=spec.get("log", False), step=spec.get("step", 1))
        return out


def _load(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"space file not found: {path}")
    doc = safe_load_file(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("params"), dict) or not doc["params"]:
        raise UserError(f"{path}: a space needs a non-empty 'params' mapping")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; "
                        f"valid: {', '.join(sorted(_TOP_KEYS))}")
    for key in ("fixed", "grid"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise UserError(f"{path}: '{key}' must be a mapping")
    return doc


def _validate(path: str, name: str, spec: Any, params: dict) -> dict:
    where = f"{path}: param {name!r}"
    if not isinstance(spec, dict) or spec.get("type") not in _SPEC_KEYS:
        raise UserError(f"{where}: needs type float, int or categorical")
    unknown = set(spec) - _SPEC_KEYS[spec["type"]]
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if spec["type"] == "categorical":
        if not isinstance(spec.get("choices"), list) or not spec["choices"]:
            raise UserError(f"{where}: 'choices' must be a non-empty list")
        if not all(c is None or isinstance(c, (bool, int, float, str)) for c in spec["choices"]):
            raise UserError(f"{where}: choices must be numbers, strings, booleans or null")
    else:
        low, high = spec.get("low"), spec.get("high")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in (low, high)):
            raise UserError(f"{where}: 'low' and 'high' must be numbers")
        if spec["type"] == "int" and not (isinstance(low, int) and isinstance(high, int)):
            raise UserError(f"{where}: int bounds must be integers")
        if low >= high:
            raise UserError(f"{where}: bad range, low {low} must be < high {high}")
        log = spec.get("log", False)
        if not (isinstance(log, bool) or (log == "one_minus" and spec["type"] == "float")):
            raise UserError(f"{where}: 'log' must be true, false or (for a float) one_minus")
        if log == "one_minus" and high >= 1:
            raise UserError(f"{where}: log: one_minus needs high < 1, got {high}")
        if spec.get("log") is True and low <= 0:
            raise UserError(f"{where}: log scale needs low > 0, got {low}")
        step = spec.get("step")
        if step is not None:
            if spec["type"] == "int" and not (isinstance(step, int) and not isinstance(step, bool)
                                              and step > 0):
                raise UserError(f"{where}: an int 'step' must be an integer > 0, got {step!r}")
            if not (isinstance(step, (int, float)) and not isinstance(step, bool)
                    and math.isfinite(step) and step > 0):
                raise UserError(f"{where}: 'step' must be a number > 0, got {step!r}")
            if step > high - low:
                raise UserError(f"{where}: 'step' {step} is wider than the range "
                                f"{low}..{high}, which would leave one value")
        if spec.get("log") and step is not None and spec["type"] == "float":
            raise UserError(f"{where}: 'step' and 'log' cannot be combined")
    when = spec.get("when")
    if when is not None:
        if not isinstance(when, dict) or not all(isinstance(v, list) for v in when.values()):
            raise UserError(f"{where}: 'when' must map a parameter to a list of values")
        order = list(params)
        for parent in when:
            if parent not in params or order.index(parent) >= order.index(name):
                raise UserError(f"{where}: 'when' refers to {parent!r}, "
                                "which must be a parameter listed before it")
    return spec
