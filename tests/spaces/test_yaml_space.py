"""YAML spaces: sampling with conditions, and clear errors for every kind of mistake."""

import optuna
import pytest

from hpsearch import spaces
from hpsearch.errors import UserError

GOOD = """
trainer: mlp
params:
  optimizer: {type: categorical, choices: [sgd, adam]}
  lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
  beta1: {type: float, low: 0.5, high: 0.99, when: {optimizer: [adam]}}
  depth: {type: int, low: 1, high: 4}
fixed: {data: digits}
grid: {depth: [1, 2]}
"""


def _write(tmp_path, text):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return str(p)


def test_yaml_space_samples_conditionally(tmp_path):
    space = spaces.get(_write(tmp_path, GOOD))
    assert space.trainer == "mlp" and space.grid == {"depth": [1, 2]}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        t = study.ask()
        out = space.fn(t)
        assert out["data"] == "digits" and 1e-4 <= out["lr"] <= 0.1
        assert ("beta1" in out) == (out["optimizer"] == "adam")
        study.tell(t, 0.0)


@pytest.mark.parametrize("text,needle", [
    ("params: [", "malformed YAML"),
    ("params: {}", "non-empty 'params'"),
    ("colour: red\nparams: {lr: {type: float, low: 0.1, high: 1}}", "unknown key(s) colour"),
    ("params: {lr: {type: float, low: 1, high: 0.1}}", "bad range"),
    ("params: {lr: {type: float, low: 0, high: 0.1, log: true}}", "log scale needs low > 0"),
    ("params: {lr: {type: float, low: 0.1, high: 1, scale: 2}}", "unknown key(s) scale"),
    ("params: {lr: {type: normal}}", "needs type float, int or categorical"),
    ("params: {b2: {type: float, low: 0.9, high: 1, log: one_minus}}", "needs high < 1"),
    ("params: {b2: {type: float, low: 0.9, high: 0.99, log: lin}}", "'log' must be true"),
    ("params: {d: {type: int, low: 1, high: 4, log: one_minus}}", "'log' must be true"),
    ("params: {depth: {type: int, low: 1.5, high: 4}}", "int bounds must be integers"),
    ("params: {o: {type: categorical, choices: []}}", "non-empty list"),
    ("params: {b: {type: float, low: 0.1, high: 1, when: {o: [x]}}}", "listed before it"),
])
def test_yaml_space_errors(tmp_path, text, needle):
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        spaces.get(_write(tmp_path, text))


def test_missing_space_file():
    with pytest.raises(UserError, match="space file not found"):
        spaces.get("/nonexistent/space.yaml")


def test_space_keys_must_be_trainer_fields(tmp_path):
    from hpsearch import trainers

    space = spaces.get(_write(tmp_path, "params: {colour: {type: categorical, choices: [a]}}"))
    with pytest.raises(UserError, match="colour"):
        spaces.check_keys(space, trainers.get("mlp").config_cls, {})


def test_one_minus_scale_samples_each_decade_of_one_minus_the_value(tmp_path):
    """`log: one_minus`: 1 - beta2 log-uniform, so ~a third of draws above 0.999 (a uniform
    draw on [0.9, 0.9999] lands there 0.9% of the time); Optuna records the gap."""
    space = spaces.get(_write(tmp_path, "params:\n  beta2: {type: float, low: 0.9, "
                                        "high: 0.9999, log: one_minus}\n"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    values = []
    for _ in range(300):
        t = study.ask()
        values.append(space.fn(t)["beta2"])
        assert t.params["one_minus_beta2"] == pytest.approx(1 - values[-1], abs=1e-9)
        study.tell(t, 0.0)
    assert all(0.9 <= v <= 0.9999 for v in values)
    above = sum(v > 0.999 for v in values) / len(values)
    assert 0.2 < above < 0.45, above
    assert spaces.describe(space)["beta2"].startswith("float from 0.9 to 0.9999, log scale of 1")
