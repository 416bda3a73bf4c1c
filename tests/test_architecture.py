"""The layering DESIGN.md asks for, checked on the source: layers point one way, only
public Ray/Optuna APIs, one owner of the run files' names, small files."""

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "hpsearch"
FILES = sorted(PKG.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


@pytest.mark.parametrize("layer,forbidden", [
    ("search", ("hpsearch.analysis", "hpsearch.api", "hpsearch.cli")),
    ("analysis", ("ray", "hpsearch.search", "hpsearch.api", "hpsearch.cli")),
    ("rundir", ("ray", "hpsearch.search", "hpsearch.analysis", "hpsearch.trainers")),
    ("trainers", ("ray", "hpsearch.search", "hpsearch.analysis", "hpsearch.rundir")),
    ("spaces", ("ray", "hpsearch.search", "hpsearch.analysis", "hpsearch.trainers")),
])
def test_layers_point_one_way(layer, forbidden):
    for path in (PKG / layer).rglob("*.py"):
        bad = [m for m in _imports(path) if m.startswith(forbidden)]
        assert not bad, f"{path.name} imports {bad}"


def test_cli_goes_through_the_api():
    mods = {m for m in _imports(PKG / "cli.py") if m.startswith("hpsearch.")}
    assert "hpsearch.search" not in mods and "hpsearch.analysis" not in mods, mods


def test_only_public_ray_and_optuna_apis():
    pattern = re.compile(r"\b(ray|optuna)(\.\w+)*\._\w+")
    for path in FILES:
        text = path.read_text()
        assert not pattern.search(text), f"{path}: {pattern.search(text).group(0)}"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("ray",
                                                                                  "optuna")):
                parts = node.module.split(".") + [a.name for a in node.names]
                assert not any(p.startswith("_") for p in parts), f"{path}: {node.module}"


def test_run_file_names_live_in_one_module():
    names = ["hpsearch.json", "epochs.csv", "trials.csv", "optuna.db", "packing.csv",
             "memory_measured.json", "ray_processes.json", "tuner.pkl"]
    owner = PKG / "rundir" / "layout.py"
    for path in FILES:
        if path == owner:
            continue
        code = "\n".join(ln for ln in path.read_text().splitlines()
                         if not ln.strip().startswith("#"))
        # Docstrings and messages may mention a file; code must not build a path from one.
        for name in names:
            assert not re.search(rf"""[/(]\s*["']{re.escape(name)}["']""", code), \
                f"{path.name} spells {name}"


def test_files_stay_small():
    for path in FILES:
        n = len(path.read_text().splitlines())
        assert n <= 300, f"{path.relative_to(PKG)} has {n} lines"
