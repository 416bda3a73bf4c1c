"""Every registered trainer and space honours the plug-in contract."""

import dataclasses
import math

import pytest

from hpsearch import spaces, trainers
from hpsearch.rundir import SCHEMA

TINY = {
    "mlp": {"data": "digits", "depth": 1, "width": 16},
    "vit": {"data": "digits", "layers": 1, "dim": 16, "heads": 2},
    "lm": {"max_tokens": 4000, "dim": 16, "layers": 1, "context": 16, "heads": 2},
}


@pytest.mark.parametrize("name", sorted(trainers.TRAINERS))
def test_trainer_reports_schema_and_finite_metrics(name):
    trainer = trainers.get(name)
    rows = []
    last = trainer.train(trainer.make_config({**TINY[name], "epochs": 2}), rows.append)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert [r["status"] for r in rows] == ["running", "completed"]
    for row in rows:
        assert set(SCHEMA) - {"error"} <= set(row)
        for key in ("train_loss", "val_loss", "train_metric", "val_metric", "epoch_time_s"):
            assert math.isfinite(row[key]), (key, row)
        assert row["gpu_mem_mb"] is None  # CPU: memory is unknown, not zero
        assert row["gap"] == pytest.approx(row["val_loss"] - row["train_loss"])
    assert rows[1]["time_total_s"] == pytest.approx(rows[0]["epoch_time_s"]
                                                    + rows[1]["epoch_time_s"])
    assert last == rows[-1]


@pytest.mark.parametrize("name", sorted(spaces.SPACES))
def test_space_keys_are_config_fields(name):
    space = spaces.get(name)
    fields = {f.name for f in dataclasses.fields(trainers.get(space.trainer).config_cls)}
    keys = set().union(*spaces.sample_configs(space.fn, n=32))
    assert keys and keys <= fields
    if space.grid:
        assert set(space.grid) <= fields


def test_mlp_optimizers_space_is_conditional():
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        params = spaces.get("mlp_optimizers").fn(trial)
        opt = params["optimizer"]
        seen.add(opt)
        assert ("beta1" in params) == (opt in ("adam", "adamw"))
        assert ("momentum" in params) == (opt == "momentum")
        assert params["batch_size"] in (8, 16, 32, 64)
        study.tell(trial, 0.0)
    assert seen == {"sgd", "momentum", "adam", "adamw"}
