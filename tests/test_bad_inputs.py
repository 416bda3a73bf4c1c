"""Bad inputs of every kind: one line on stderr, exit 2, no traceback, nothing left behind,
and nothing already written lost (the reliability probe's list)."""

import json

import pytest

from hpsearch.cli import main

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" \
       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"

FILES = {
    "mapping_choice.yaml": "trainer: mlp\nparams:\n  optimizer: {type: categorical, "
                           "choices: [{a: 1}, adam]}\n",
    "fixed_abc.yaml": "trainer: mlp\nparams:\n  lr: {type: float, low: 0.001, high: 0.1}\n"
                      "fixed: {depth: abc, data: digits}\n",
    "negative_lr.yaml": "trainer: mlp\nparams:\n  lr: {type: float, low: -1.0, high: 0.1}\n"
                        "fixed: {data: digits}\n",
    "bomb.yaml": BOMB,
    "point_lr.yaml": "- {optimizer: adam, lr: 5.0}\n",
    "point_beta2.yaml": "- {optimizer: adam, lr: 0.001, beta2: 0.5}\n",
    "point_batch.yaml": "- {optimizer: sgd, lr: 0.001, batch_size: 12}\n",
    "fixed_epochs.yaml": "trainer: mlp\nparams:\n  lr: {type: float, low: 0.001, high: 0.1}\n"
                         "fixed: {epochs: 20, data: digits}\n",
    "step_zero.yaml": "trainer: mlp\nparams:\n  batch_size: {type: int, low: 8, high: 64, "
                      "step: 0}\n",
    "step_float.yaml": "trainer: mlp\nparams:\n  batch_size: {type: int, low: 8, high: 64, "
                       "step: 2.5}\n",
    "step_wide.yaml": "trainer: mlp\nparams:\n  lr: {type: float, low: 0.1, high: 0.2, "
                      "step: 0.5}\n",
    "unknown_key.yaml": "trainer: mlp\nparams:\n  lr: {type: float, low: 0.001, high: 0.1}\n"
                        "  nonsense: {type: float, low: 0, high: 1}\nfixed: {data: digits}\n",
    "points_bomb.yaml": BOMB,
    "syntax_trainer.py": "def train(cfg, report:\n    pass\n",
    "a_file": "not a directory\n",
}


@pytest.fixture
def files(tmp_path, monkeypatch):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    return tmp_path


RUN = ["run", "--trainer", "mlp", "--set", "data=digits", "--samples", "1", "--max-epochs", "1"]


@pytest.mark.parametrize("args,needle", [
    (["run", "--space", "mapping_choice.yaml"], "choices must be numbers"),
    (["run", "--space", "fixed_abc.yaml"], "setting depth='abc': expected int"),
    (["run", "--space", "negative_lr.yaml"], "lr must be > 0"),
    (["run", "--space", "bomb.yaml"], "aliases"),
    (["run", "--space", "step_zero.yaml"], "'step' must be an integer > 0, got 0"),
    (["run", "--space", "step_float.yaml"], "'step' must be an integer > 0, got 2.5"),
    (["run", "--space", "step_wide.yaml"], "'step' 0.5 is wider than the range"),
    (["run", "--space", "unknown_key.yaml"], "sets nonsense, which the trainer's Config"),
    (RUN + ["--points", "points_bomb.yaml"], "aliases"),
    (RUN + ["--points", "point_lr.yaml"], ("--points: lr=5.0 is outside space 'mlp_optimizers' "
                                          "(float from 0.0001 to 0.1, log scale)")),
    (RUN + ["--points", "point_beta2.yaml"], ("beta2=0.5 is outside space 'mlp_optimizers' "
                                             "(float from 0.9 to 0.9999)")),
    (RUN + ["--points", "point_batch.yaml"], "'12' not in (8, 16, 32, 64)"),
    (["run", "--trainer", "mlp", "--set", "data=nosuch"], "data must be one of"),
    (["run", "--trainer", "lm", "--set", "data=digits"], "data must be one of"),
    (["run", "--trainer", "mlp", "--set", "data=cifar10:/no/such/dir"], "directory not found"),
    (["run", "--trainer", "vit", "--set", "data=cifar10:."], "cifar10: no data_batch_1 in ."),
    (["run", "--trainer", "lm", "--set", "data=wikitext2:."], "no wiki.train.tokens in ."),
    (["train", "--trainer", "lm", "--set", "data=wikitext2:."], "no wiki.train.tokens in ."),
    (RUN + ["--metric", "nosuch"], "--metric 'nosuch' is not reported"),
    (RUN + ["--num-cpus", "0"], "--num-cpus must be >= 1"),
    (RUN + ["--num-cpus", "-2"], "--num-cpus must be >= 1"),
    (RUN + ["--seed", "-1"], "seed must be in"),
    (RUN + ["--max-epochs", "8", "--budget-epochs", "5"], "no trial could train to the end"),
    (RUN + ["--cpus-per-trial", "0"], "cpus per trial must be > 0"),
    (RUN + ["--set", "epochs=5"], ("epochs=5 is set (--set or the space), but a trial's epochs "
                                  "are --max-epochs (1)")),
    (["run", "--space", "fixed_epochs.yaml", "--max-epochs", "3"], "epochs=20 is set"),
    (RUN + ["--cpus-per-trial", "2", "--num-cpus", "1"], "has 1 CPUs (--num-cpus): no trial"),
    (RUN + ["--cpus-per-trial", "100000"], "no trial could start"),
    (RUN + ["--gpus-per-trial", "lots"], "expected a number or 'auto'"),
    (["run", "--trainer", "syntax_trainer:train", "--space", "fixed_abc.yaml"], "syntax error"),
    (["train", "--trainer", "mlp", "--set", "device=cuda"], "no such CUDA device"),
    (["train", "--trainer", "mlp", "--set", "device=bogus"], "device must be"),
    (["train", "--trainer", "mlp", "--set", "fault=xyz@abc"], "fault must be"),
    (["train", "--config", "bomb.yaml"], "aliases"),
])
def test_bad_input_is_one_line_exit_2(files, args, needle, capsys):
    out = files / "runs" / "r"
    argv = [*args, "--out", str(out)] if args[0] == "run" else args
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpsearch: error: "), err
    assert needle in lines[0], lines[0]
    assert captured.out == ""  # not even `run`'s `search:` line: the input was never accepted
    assert not out.exists()  # nothing left behind


@pytest.mark.parametrize("args,needle", [
    (["run", "--scheduler", "nope"], "argument --scheduler: invalid choice: 'nope'"),
    (["run", "--samples", "many"], "argument --samples: invalid int value"),
    (["nosuch"], "argument command: invalid choice: 'nosuch'"),
    (["analyze"], "the following arguments are required: run_dir"),
])
def test_bad_argument_is_one_line_exit_2(files, args, needle, capsys):
    """argparse's own errors too: one line naming the help to read, not the whole usage."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpsearch: error: "), lines
    assert needle in lines[0] and "--help" in lines[0], lines[0]
    assert not (files / "runs").exists()


@pytest.mark.parametrize("out,needle", [("a_file", "not a directory"),
                                        ("/proc/hpsearch-run", "cannot create"),
                                        ("full", "non-empty directory that holds no run")])
def test_bad_output_directory(files, out, needle, capsys):
    (files / "full").mkdir()
    (files / "full" / "thesis.tex").write_text("keep me")
    assert main(RUN + ["--out", out]) == 2
    assert needle in capsys.readouterr().err
    assert (files / "full" / "thesis.tex").read_text() == "keep me"
    assert sorted(p.name for p in (files / "full").iterdir()) == ["thesis.tex"]


@pytest.mark.parametrize("meta", ["[1, 2]", "{}", '{"trainer": "mlp", "scheduler": 7}', "{"])
def test_tampered_run_file(files, meta, capsys):
    run = files / "runs" / "bad"
    run.mkdir(parents=True)
    (run / "hpsearch.json").write_text(meta)
    for cmd in (["resume", str(run)], ["analyze", str(run)], ["export", str(run)]):
        assert main(cmd) == 2, cmd
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert (run / "hpsearch.json").read_text() == meta  # nothing already written is lost


def test_export_out_is_a_file_and_tampered_params(files, capsys):
    run = files / "runs" / "r"
    run.mkdir(parents=True)
    (run / "hpsearch.json").write_text(json.dumps({"trainer": "mlp", "mode": "max",
                                                   "finished": True}))
    trial = run / "run_trial_t1_1_x"
    trial.mkdir()
    (trial / "params.json").write_text("[1, 2]")
    (trial / "result.json").write_text(json.dumps(
        {"trial_id": "t1", "epoch": 1, "val_metric": 0.5, "status": "completed"}) + "\n")
    assert main(["export", str(run), "--out", "a_file"]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["export", str(run), "--out", "best"]) == 2
    assert "is not a mapping of settings" in capsys.readouterr().err


def test_resume_refuses_a_directory_others_can_write(files, capsys):
    run = files / "runs" / "shared"
    run.mkdir(parents=True)
    (run / "hpsearch.json").write_text(json.dumps({"trainer": "mlp"}))
    run.chmod(0o777)
    assert main(["resume", str(run)]) == 2
    assert "writable by others" in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["run", "--trainer", "nosuch"],
    ["run", "--trainer", "mlp", "--space", "bomb.yaml"],
    ["run", "--trainer", "mlp", "--space", "nosuch"],
    ["run", "--trainer", "mlp", "--max-epochs", "0"],
    ["run", "--space", "unknown_key.yaml"],
    ["run", "--trainer", "mlp", "--cpus-per-trial", "100000", "--set", "data=digits"],
    ["run", "--trainer", "mlp", "--metric", "nosuch", "--set", "data=digits"],
    ["train", "--config", "missing.yaml"],
    ["train", "--trainer", "mlp", "--set", "lr=-1"],
    ["analyze", "runs/missing"],
    ["export", "runs/missing"],
])
def test_a_bad_input_is_refused_before_the_heavy_imports(files, args):
    """The usual mistakes are caught before pandas, Ray or torch load (0.1-0.4 s, not 0.9-2.2
    s, on the CI machine): a later import moved onto these paths fails here, not in a timing."""
    import subprocess
    import sys

    code = ("import sys\nfrom hpsearch.cli import main\ntry:\n    rc = main(sys.argv[1:])\n"
            "except SystemExit as e:\n    rc = e.code\n"
            "print(sorted(m for m in ('pandas', 'ray', 'torch') if m in sys.modules))\n"
            "sys.exit(rc)\n")
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         cwd=files, timeout=60, check=False)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stdout.strip().splitlines() == ["[]"], res.stdout  # and no `search:` line


def test_resume_of_a_finished_run_starts_no_ray(files):
    """Nothing to finish: the run is shown as it is, without Ray (or torch) loading, and
    exit 0."""
    import subprocess
    import sys

    run = files / "runs" / "done"
    run.mkdir(parents=True)
    (run / "hpsearch.json").write_text(json.dumps({"trainer": "mlp", "mode": "max",
                                                   "metric": "val_metric", "finished": True}))
    trial = run / "run_trial_t1_1_x"
    trial.mkdir()
    (trial / "params.json").write_text(json.dumps({"lr": 0.01}))
    (trial / "result.json").write_text(json.dumps(
        {"trial_id": "t1", "epoch": 1, "val_metric": 0.5, "status": "completed"}) + "\n")
    from hpsearch.rundir import RunDir, layout

    meta = json.loads((run / "hpsearch.json").read_text())
    assert not RunDir(run).settled(meta)  # killed before its tables were written: not done
    for name in (layout.EPOCHS, layout.TRIALS):
        (run / name).write_text("trial_id\nt1\n")
    (run / layout.PROCESSES).write_text("{}")
    assert not RunDir(run).settled(meta)  # its Ray may be left: resume ends it
    (run / layout.PROCESSES).unlink()
    assert RunDir(run).settled(meta) and not RunDir(run).settled({**meta, "finished": False})
    code = ("import sys\nfrom hpsearch.cli import main\nrc = main(sys.argv[1:])\n"
            "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))\nsys.exit(rc)\n")
    res = subprocess.run([sys.executable, "-c", code, "resume", str(run)], capture_output=True,
                         text=True, cwd=files, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert "finished already; nothing to resume" in res.stderr
    assert "best trial t1" in res.stdout and res.stdout.strip().splitlines()[-1] == "[]"
    assert sorted(p.name for p in run.iterdir()) == ["epochs.csv", "hpsearch.json",
                                                     "run_trial_t1_1_x", "trials.csv"]
    assert (run / "trials.csv").read_text() == "trial_id\nt1\n"  # nothing rewritten


def _finished_run(root, n=3):
    run = root / "runs" / "done"
    run.mkdir(parents=True)
    (run / "hpsearch.json").write_text(json.dumps({"trainer": "mlp", "mode": "max",
                                                   "metric": "val_metric", "finished": True}))
    for i in range(n):
        trial = run / f"run_trial_t{i}_{i}_x"
        trial.mkdir()
        (trial / "params.json").write_text(json.dumps({"lr": 0.01 * (i + 1), "data": "digits"}))
        (trial / "result.json").write_text(json.dumps(
            {"trial_id": f"t{i}", "epoch": 1, "val_metric": 0.5 + i / 10,
             "status": "completed"}) + "\n")
    return run


def test_export_never_overwrites_a_file_of_the_users(files, capsys):
    """An --out holding the user's 2.yaml (or confirm.csv, or a non-weights 1-seed1000.pt
    under --save-models) is refused before anything is written; an earlier export's files
    are replaced, and its lower ranks left there are named."""
    run = _finished_run(files)
    out = files / "best"
    out.mkdir()
    (out / "2.yaml").write_text("my notes\n")
    assert main(["export", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "2.yaml is there and is not an hpsearch export" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["2.yaml"]  # 1.yaml not written either
    assert (out / "2.yaml").read_text() == "my notes\n"
    (out / "2.yaml").unlink()
    assert main(["export", str(run), "--out", str(out), "--top", "3"]) == 0
    assert main(["export", str(run), "--out", str(out), "--top", "1"]) == 0  # replaces 1.yaml
    err = capsys.readouterr().err.splitlines()
    assert [e.split(": ", 2)[2].split()[0] for e in err] == [str(out / "2.yaml"),
                                                              str(out / "3.yaml")], err
    assert "from an earlier export (trial t1 of" in err[0]  # ranked 2nd by the first export
    (out / "confirm.csv").write_text("a,b\n1,2\n")
    assert main(["export", str(run), "--out", str(out), "--confirm-seeds", "1"]) == 2
    assert "confirm.csv is there and is not an hpsearch export" in capsys.readouterr().err
    (out / "confirm.csv").unlink()
    weights = files / "weights"
    weights.mkdir()
    (weights / "1-seed1000.pt").write_text("not weights")
    (out / "1.yaml").unlink()
    assert main(["export", str(run), "--out", str(out), "--confirm-seeds", "1",
                 "--save-models", str(weights)]) == 2
    assert "1-seed1000.pt exists and holds no model weights" in capsys.readouterr().err
    assert not (out / "1.yaml").exists() and not (out / "confirm.csv").exists()
