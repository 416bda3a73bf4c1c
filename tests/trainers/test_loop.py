"""The shared epoch loop: seeds, divergence, checkpoints, fault injection, optimizers."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from hpsearch import trainers
from hpsearch.trainers import _loop

MLP = {"data": "digits", "depth": 1, "width": 16, "epochs": 3}


def _run(overrides, checkpointer=None):
    t = trainers.get("mlp")
    rows = []
    t.train(t.make_config({**MLP, **overrides}), rows.append, checkpointer)
    return rows


def _losses(rows):
    return [(r["epoch"], r["train_loss"], r["val_loss"], r["val_metric"]) for r in rows]


def test_same_seed_same_metrics_other_seed_differs():
    assert _losses(_run({"seed": 3})) == _losses(_run({"seed": 3}))
    assert _losses(_run({"seed": 3})) != _losses(_run({"seed": 4}))


def test_threads_set_the_rounding_for_the_training_only():
    """torch's thread count changes float rounding: a trial (one thread per CPU it holds)
    is reproduced exactly by its exported config's `threads` in a process with another
    count, and the caller's count is left as it was."""
    cfg = {"optimizer": "adam", "lr": 0.003, "depth": 2, "epochs": 2}
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run(cfg)
        torch.set_num_threads(2)
        two = _run(cfg)
        assert _losses(one) != _losses(two)  # else this config cannot tell the counts apart
        assert _losses(_run({**cfg, "threads": 1})) == _losses(one)
        assert torch.get_num_threads() == 2
        assert [r["cpu_threads"] for r in one + two] == [1, 1, 2, 2]
    finally:
        torch.set_num_threads(before)


def test_divergence_stops_and_reports_diverged():
    rows = _run({"optimizer": "sgd", "lr": 1e12, "epochs": 5})
    assert rows[-1]["status"] == "diverged"
    assert len(rows) < 5
    assert math.isnan(rows[-1]["val_metric"])
    assert all(r["status"] == "running" for r in rows[:-1])


def test_resume_from_checkpoint_matches_uninterrupted(memory_checkpointer):
    straight = _run({"epochs": 3})
    ckpt = memory_checkpointer()
    first = _run({"epochs": 2}, ckpt)
    assert ckpt.saves == 2 and ckpt.state["epoch"] == 2
    resumed = _run({"epochs": 3}, memory_checkpointer(ckpt.state))
    assert [r["epoch"] for r in resumed] == [3]  # no repeated epoch
    got = [v for row in _losses(first + resumed) for v in row]
    assert got == pytest.approx([v for row in _losses(straight) for v in row], rel=1e-6)


@pytest.mark.parametrize("kind,exc", [("error", RuntimeError),
                                      ("oom", torch.cuda.OutOfMemoryError)])
def test_fault_injection(kind, exc):
    rows = []
    t = trainers.get("mlp")
    with pytest.raises(exc):
        t.train(t.make_config({**MLP, "fault": f"{kind}@2"}), rows.append)
    assert [r["epoch"] for r in rows] == [1]


@pytest.mark.parametrize("name,cls", [("sgd", torch.optim.SGD), ("momentum", torch.optim.SGD),
                                      ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_build_optimizer_maps_hyperparameters(name, cls):
    cfg = _loop.TrainConfig(optimizer=name, lr=0.01, beta1=0.8, beta2=0.95, momentum=0.7,
                            weight_decay=0.1)
    opt = _loop.build_optimizer(cfg, torch.nn.Linear(3, 2))
    group = opt.param_groups[0]  # the weight matrix: decayed
    assert type(opt) is cls and group["lr"] == 0.01 and group["weight_decay"] == 0.1
    if name in ("adam", "adamw"):
        assert group["betas"] == (0.8, 0.95)
    else:
        assert group["momentum"] == (0.7 if name == "momentum" else 0)


def test_weight_decay_skips_biases_and_norms():
    from hpsearch.trainers import lm, nets

    cfg = lm.Config(model="gpt", optimizer="adamw", weight_decay=0.1, dim=16, heads=2,
                    layers=2, context=8)
    model = nets.GPT(30, cfg)
    opt = _loop.build_optimizer(cfg, model)
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.1 for p in g["params"]}
    for name, p in model.named_parameters():
        is_norm_or_bias = name.endswith("bias") or ".ln" in name or name.startswith("ln_f")
        assert (id(p) in decay) == (not is_norm_or_bias), name
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == \
        _loop.count_params(model)


@pytest.mark.parametrize("bad", [{"optimizer": "rmsprop"}, {"lr": 0.0}, {"beta1": 1.0},
                                 {"batch_size": 0}, {"amp": "fp8"}, {"device": "bogus"},
                                 {"fault": "xyz@abc"}, {"threads": -1}])
def test_invalid_configs_are_rejected(bad):
    from hpsearch.errors import UserError

    with pytest.raises(UserError):
        trainers.get("mlp").make_config(bad)


def test_finite_but_exploding_loss_counts_as_diverged():
    rows = _run({"optimizer": "sgd", "lr": 1e6, "epochs": 5})
    assert rows[-1]["status"] == "diverged" and len(rows) < 5


@pytest.mark.parametrize("name,default", [("adamw", 0.01), ("adam", 0.0), ("sgd", 0.0),
                                          ("momentum", 0.0)])
def test_weight_decay_left_unset_is_the_optimizers_usual_default(name, default):
    """A grid over optimizers that leaves weight_decay alone must not make AdamW Adam."""
    opt = _loop.build_optimizer(_loop.TrainConfig(optimizer=name), torch.nn.Linear(3, 2))
    assert opt.param_groups[0]["weight_decay"] == default
    explicit = _loop.TrainConfig(optimizer="adamw", weight_decay=0.0)
    assert _loop.build_optimizer(explicit, torch.nn.Linear(3, 2)).param_groups[0][
        "weight_decay"] == 0.0


@pytest.mark.parametrize("name,overrides", [
    ("mlp", {"data": "digits", "depth": 1, "width": 16}),
    ("vit", {"data": "digits", "layers": 1, "dim": 16, "heads": 2}),
    ("lm", {"max_tokens": 5000, "layers": 1, "dim": 16, "context": 16}),
])
def test_test_split_only_when_asked_and_only_after_the_last_epoch(name, overrides):
    t = trainers.get(name)
    cfg = t.make_config({**overrides, "epochs": 2})
    rows: list[dict] = []
    t.train(cfg, rows.append)  # what a search calls: never the test split
    assert not any("test_metric" in r for r in rows)
    rows = []
    t.train(cfg, rows.append, test=True)
    assert "test_metric" not in rows[0]
    assert math.isfinite(rows[-1]["test_metric"]) and math.isfinite(rows[-1]["test_loss"])
    # Evaluating the test split changes nothing the search sees.
    assert rows[-1]["val_metric"] == pytest.approx(_val_of(t, cfg))


def _val_of(t, cfg):
    rows: list[dict] = []
    t.train(cfg, rows.append)
    return rows[-1]["val_metric"]


def test_digits_are_scikit_learns_without_importing_it(tmp_path):
    """Every trial actor on the digits data read it through load_digits(), importing
    scikit-learn (~0.75 CPU-s each); the CSV it ships is read directly, same arrays."""
    code = ("import sys, numpy as np; from hpsearch.trainers import data;"
            "i, t = data._digits_arrays(); assert 'sklearn' not in sys.modules;"
            "np.save(sys.argv[1], np.concatenate([i.reshape(len(i), -1), t[:, None]], 1))")
    out = tmp_path / "d.npy"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True)
    got = np.load(out)
    from sklearn.datasets import load_digits

    d = load_digits()
    assert np.array_equal(got[:, :-1].reshape(-1, 8, 8), d.images)
    assert np.array_equal(got[:, -1].astype(int), d.target)
