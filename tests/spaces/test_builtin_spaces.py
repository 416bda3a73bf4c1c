"""The built-in spaces reproduce the seed reports' experiments as they ran them."""

import pytest

from hpsearch import spaces, trainers


@pytest.mark.parametrize("name", sorted(spaces.SPACES))
def test_space_and_grid_name_real_config_fields_and_a_report(name):
    s = spaces.get(name)
    t = trainers.get(s.trainer)
    spaces.check_keys(s, t.config_cls, {})
    for key, values in (s.grid or {}).items():
        assert t.has_field(key), key
        for v in values:  # every grid cell is a valid config
            t.make_config({key: v})
    assert s.report


def _choices(name, param):
    seen = set()
    for config in spaces.sample_configs(spaces.get(name).fn, n=64):
        if param in config:
            seen.add(config[param])
    return seen


def test_seed_grids_as_the_reports_ran_them():
    betas = spaces.get("adam_betas").grid
    assert betas["beta2"] == [0.6, 0.7, 0.9, 0.99, 0.999] and betas["batch_size"] == [8, 32]
    assert len(betas["lr"]) >= 2 and 1e-2 in betas["lr"]
    opts = ["sgd", "momentum", "adam", "adamw"]
    for name in ("mlp_optimizers", "vit_norm_depth", "lm_optimizers_depth"):
        assert spaces.get(name).grid["optimizer"] == opts
        assert _choices(name, "optimizer") == set(opts)
    assert spaces.get("vit_norm_depth").grid["layers"] == [2, 4, 6]
    assert spaces.get("lm_optimizers_depth").grid["layers"] == [1, 2, 4]
    assert set(spaces.get("mlp_activations").grid["activation"]) == {"relu", "tanh", "sigmoid"}
    # AdamW's decay is searched where adamw is, and defaults to the usual 0.01 elsewhere.
    assert any(0 < wd < 1 for wd in _choices("mlp_optimizers", "weight_decay"))
    assert min(_choices("adam_betas", "beta2")) < 0.7  # the space reaches the low beta2s


@pytest.mark.parametrize("name", ["mlp_optimizers", "adam_betas"])
def test_beta2_is_searched_on_log_one_minus_and_a_given_point_keeps_it(name):
    """beta2 near Adam's 0.999 is sampled as often as near 0.99 (log of 1 - beta2), and a
    --points config naming beta2 runs with that beta2."""
    import optuna

    from hpsearch.spaces import scales

    fn = spaces.get(name).fn
    values = [c["beta2"] for c in spaces.sample_configs(fn, n=200) if "beta2" in c]
    near = sum(0.999 <= v for v in values), sum(0.99 <= v < 0.999 for v in values)
    assert min(near) >= 0.15 * len(values), near  # uniform sampling: 1% at or above 0.999
    study = optuna.create_study()
    study.enqueue_trial(scales.optuna_point({"optimizer": "adam", "beta2": 0.999}))
    assert fn(study.ask())["beta2"] == pytest.approx(0.999)
