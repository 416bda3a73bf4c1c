"""One config without a search: train it (and keep its weights) or estimate its GPU memory.
Part of the public API (`hpsearch.train`, `hpsearch.estimate`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from hpsearch import config as _config
from hpsearch.errors import UserError

__all__ = ["train", "estimate"]


def _one_config(trainer: str | None, config: Mapping | str | Path | None,
                overrides: Sequence[str] | Mapping):
    from hpsearch import trainers

    values, name = {}, trainer
    if isinstance(config, (str, Path)):
        from hpsearch.spaces.yaml_space import safe_load_file

        doc = safe_load_file(config)
        if not isinstance(doc, dict):
            raise UserError(f"{config}: expected a mapping")
        if isinstance(doc.get("import_path"), str):  # an export of a `module:function` run
            trainers.add_import_path(doc["import_path"])
        values = doc.get("config", doc)
        name = name or doc.get("trainer")
        if not isinstance(values, dict):
            raise UserError(f"{config}: 'config' must be a mapping")
    elif config:
        values = dict(config)
    resolved = trainers.get(name or "mlp")
    cfg = resolved.make_config(values)
    changes = _config.checked_values(resolved.config_cls, overrides)
    if isinstance(cfg, dict):
        return resolved, {**cfg, **changes}
    try:
        return resolved, dataclasses.replace(cfg, **changes)
    except (TypeError, ValueError) as exc:
        raise UserError(f"trainer {resolved.name!r}: {exc}") from None


def train(trainer: str | None = None, config: Mapping | str | Path | None = None,
          overrides: Sequence[str] | Mapping = (), report: Callable[[dict], Any] | None = None,
          on_start: Callable[[Any, Any], Any] | None = None,
          save_model: str | Path | None = None):
    """Train one config without Ray (an exported file, a dict, or `key=value` overrides).

    `report(row)` sees each epoch's row; `on_start(trainer, cfg)` is called once the config
    is checked, before training starts; `save_model` keeps the trained weights there
    (`torch.load(path, weights_only=True)` reads them). A trainer that holds out a test
    split (every built-in one) adds `test_loss` and `test_metric` to the last row.

    Returns:
        (trainer, Config, the last epoch's row).
    """
    from hpsearch.trainers import check_runnable
    from hpsearch.trainers.contract import ContractError, train_checked, user_frame

    resolved, cfg = _one_config(trainer, config, overrides)
    check_runnable(cfg)
    from hpsearch.trainers.saving import ModelKeeper  # torch (~1 s): once the config is good

    keeper = ModelKeeper.for_trainer(resolved, save_model)
    if on_start:
        on_start(resolved, cfg)
    try:
        last = train_checked(resolved, cfg, report or (lambda row: None), checkpointer=keeper)
    except ContractError as exc:
        raise UserError(f"trainer {resolved.name!r}: {exc}") from None
    except (KeyboardInterrupt, UserError):
        raise
    except SystemExit as exc:  # a script's sys.exit inside train (argparse, say)
        raise UserError(f"trainer {resolved.name!r} called sys.exit: {user_frame(exc)}"
                        ) from None
    except Exception as exc:  # the trainer's own failure: where in its code, in one line
        raise UserError(f"trainer {resolved.name!r} failed: {user_frame(exc)}") from None
    if keeper:
        keeper.write()
    return resolved, cfg, last


def estimate(trainer: str | None = None, config: Mapping | str | Path | None = None,
             overrides: Sequence[str] | Mapping = ()):
    """One config's peak GPU memory estimate (no GPU needed).

    Returns:
        (trainer, Config, `trainers.memory.MemoryEstimate`).
    """
    from hpsearch.trainers import memory

    resolved, cfg = _one_config(trainer, config, overrides)
    if resolved.module is None or not memory.supports(resolved.module):
        raise UserError(f"trainer {resolved.name!r} cannot be estimated: its module needs "
                        "load_data(cfg), make_model(cfg, data) and LOSS")
    try:
        return resolved, cfg, memory.estimate(resolved.module, cfg)
    except ValueError as exc:
        raise UserError(f"trainer {resolved.name!r}: {exc}") from None
