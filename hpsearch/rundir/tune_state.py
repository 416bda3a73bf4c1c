"""Ray Tune's saved state in a run directory: keeping a last good copy of each file, putting
it back after a full disk or a kill cut the live one short, and setting aside the folder of
a trial Tune's state lost (search/ledger.py)."""

from __future__ import annotations

import io
import json
import os
import pickletools
import time
from pathlib import Path

from hpsearch.errors import UserError
from hpsearch.rundir.layout import (
    LOST_TRIALS,
    TUNE_STATE_BACKUP,
    TUNE_STATE_GLOBS,
    RunDir,
    atomic_write,
)

__all__ = ["backup", "repair", "set_aside_trial"]


def _whole(name: str, data: bytes, full: bool) -> bool:
    """Whether a Tune state file was written to its end: the trial list parses as JSON; a
    pickle ends with its STOP opcode (`full`: every opcode read, nothing run)."""
    if name.startswith("experiment_state-"):
        try:
            json.loads(data)
            return True
        except ValueError:
            return False
    if not (data[:1] == b"\x80" and data.endswith(b".")):
        return False
    if full:
        try:
            for _ in pickletools.genops(io.BytesIO(data)):
                pass
        except (ValueError, EOFError):
            return False
    return True


def _files(folder: Path) -> list[Path]:
    return sorted(p for pattern in TUNE_STATE_GLOBS for p in folder.glob(pattern))


def backup(rd: RunDir, settle_s: float = 1.0) -> int:
    """Copy each Tune state file that looks whole (`_whole`, the quick check) and has not
    changed for `settle_s` (Tune may still be copying it) to TUNE_STATE_BACKUP, atomically,
    keeping the copy before as `<name>.prev`: a cut pickle that passes the quick check
    (1 in 256 end with STOP's byte) costs one generation, not the state. Returns copies made.
    """
    folder = rd.path / TUNE_STATE_BACKUP
    made, now = 0, time.time()
    for live in _files(rd.path):
        copy = folder / live.name
        try:
            if now - live.stat().st_mtime < settle_s:
                continue
            data = live.read_bytes()
            if not _whole(live.name, data, full=False):
                continue  # mid-write or cut short: keep the previous copy
            if copy.is_file() and copy.stat().st_size == len(data) and copy.read_bytes() == data:
                continue
            folder.mkdir(exist_ok=True, mode=0o700)
            if copy.is_file():
                os.replace(copy, folder / f"{live.name}.prev")
            atomic_write(copy, data)
        except OSError:  # a full disk: the copies made before stay
            continue
        made += 1
    return made


def repair(rd: RunDir) -> list[str]:
    """Put back the newest good copy of each Tune state file that is missing or cut short
    (checked in full: JSON parsed, pickles read to their STOP without running them).
    Returns the names repaired.

    Raises:
        UserError: a file is cut short and no good copy of it exists.
    """
    repaired = []
    folder = rd.path / TUNE_STATE_BACKUP
    for name in sorted({p.name for p in _files(folder) + _files(rd.path)}):
        live = rd.path / name
        if live.is_file() and _whole(name, live.read_bytes(), full=True):
            continue
        for copy in (folder / name, folder / f"{name}.prev"):
            if copy.is_file() and _whole(name, data := copy.read_bytes(), full=True):
                atomic_write(live, data)
                repaired.append(name)
                break
        else:
            raise UserError(f"{live}: Ray Tune's saved state is cut short and has no good "
                            "copy; this run cannot be resumed ('hpsearch analyze' works)")
    names = {p.name.split("-")[0] for p in _files(rd.path)}
    if "search_gen_state" in names and "searcher" not in names:  # Tune would start over
        raise UserError(f"{rd.path}: Ray Tune's saved state has no searcher snapshot (the "
                        "run was killed before Tune first copied it); it cannot be resumed")
    return repaired


def set_aside_trial(rd: RunDir, trial_id: str) -> list[str]:
    """Move the folders of Tune trial `trial_id` (named `<trainable>_<id>_...`) into
    LOST_TRIALS, out of the tables: a driver killed mid-save left Tune's state without
    the trial, so its config runs again as a new one. Returns the folders moved."""
    moved = []
    for folder in rd.trial_dirs():
        if f"_{trial_id}_" in folder.name:
            (rd.path / LOST_TRIALS).mkdir(exist_ok=True, mode=0o700)
            folder.rename(rd.path / LOST_TRIALS / folder.name)
            moved.append(folder.name)
    return moved
