"""The fake-tensor GPU memory estimate: exact parameter/optimizer/data accounting, growth with
batch size and depth, and no fake tensor ever leaking into the data loaders' caches."""

import subprocess
import sys
from pathlib import Path

import pytest

from hpsearch import trainers
from hpsearch.trainers import memory, mlp

TINY = {
    "mlp": {"data": "digits", "depth": 1, "width": 16},
    "vit": {"data": "digits", "layers": 1, "dim": 16, "heads": 2},
    "lm": {"max_tokens": 4000, "dim": 16, "layers": 1, "context": 16, "heads": 2},
}
MB = 2**20


def _est(**kw):
    return memory.estimate(mlp, mlp.Config(data="digits", **kw))


def test_parameters_gradients_and_optimizer_state_are_counted_exactly():
    model, data = mlp.build(mlp.Config(data="digits", depth=2, width=512))
    params = sum(p.numel() * 4 for p in model.parameters()) / MB
    adam = _est(depth=2, width=512, optimizer="adam")
    assert adam.params_mb == pytest.approx(params)
    assert adam.grads_mb == pytest.approx(params)
    # At the peak, inside the foreach step: the states (Adam: exp_avg and exp_avg_sq;
    # momentum: one buffer) plus the step's parameter-sized temporaries.
    momentum = _est(depth=2, width=512, optimizer="momentum")
    assert adam.optimizer_mb >= 2 * params * 0.999
    assert adam.optimizer_mb > momentum.optimizer_mb >= params * 0.999
    assert _est(depth=2, width=512, optimizer="sgd").optimizer_mb == 0
    data_bytes = sum(t.numel() * t.element_size()
                     for t in (data.x_train, data.y_train, data.x_val, data.y_val))
    assert adam.data_mb == pytest.approx((data_bytes + data.x_train.shape[0] * 8) / MB)
    assert adam.total_mb == pytest.approx(adam.data_mb + adam.params_mb + adam.grads_mb
                                          + adam.optimizer_mb + adam.activations_mb)


def test_activations_grow_with_batch_size_and_depth():
    small, large = _est(width=1024, batch_size=32), _est(width=1024, batch_size=512)
    assert large.activations_mb > 8 * small.activations_mb
    assert large.params_mb == small.params_mb
    assert _est(width=1024, depth=6).total_mb > _est(width=1024, depth=1).total_mb


def test_hyperparameters_that_change_no_tensor_share_one_estimate():
    a = _est(width=64, lr=0.1, beta1=0.5, weight_decay=0.1, seed=3)
    b = _est(width=64, lr=1e-4)
    assert a is b  # cached: one fake step per shape, not per trial


@pytest.mark.parametrize("name", sorted(trainers.TRAINERS))
def test_every_builtin_trainer_can_be_estimated(name):
    trainer = trainers.get(name)
    assert memory.supports(trainer.module)
    est = memory.estimate(trainer.module, trainer.make_config(TINY[name]))
    assert 0 < est.params_mb < est.total_mb
    assert est.activations_mb > 0 and est.data_mb > 0


def test_estimating_first_leaves_real_tensors_for_training():
    # In a fresh process the estimate is the first to load the data: the loaders' caches
    # must hold real tensors afterwards, or the next training run would get fake ones.
    code = ("from hpsearch.trainers import memory, lm, vit\n"
            "for mod, cfg in ((lm, lm.Config(max_tokens=4000, dim=16, layers=1, context=16,"
            " heads=2, model='gpt', epochs=1)), (vit, vit.Config(data='digits', layers=1,"
            " dim=16, heads=2, epochs=1))):\n"
            "    memory.estimate(mod, cfg)\n"
            "    rows = []\n"
            "    mod.train(cfg, rows.append)\n"
            "    assert rows[-1]['status'] == 'completed', rows\n"
            "print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
