"""Ray Tune's saved state in a run directory: keeping a last good copy of each file, putting
it back after a full disk or a kill cut the live one short, and setting aside the folder of
a trial Tune's state lost (search/ledger.py)."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import pickletools
import re
import shutil
import time
from pathlib import Path
from typing import Callable

from hpsearch.errors import UserError
from hpsearch.rundir.layout import (
    CHECKPOINT_ROW,
    EXPERIMENT_STATE_GLOB,
    LOST_TRIALS,
    SEARCH_GEN_STATE_GLOB,
    TUNE_STATE_BACKUP,
    TUNE_STATE_GLOBS,
    TUNE_STATE_LOST,
    RunDir,
    atomic_write,
)
from hpsearch.rundir.results import epoch_rows

__all__ = ["backup", "saved", "repair", "set_aside_trial", "set_aside_folder",
           "mend_checkpoints", "reopen_search", "reopened", "saved_statuses", "backed_up"]
_CHECKPOINT = re.compile(r"checkpoint_(\d+)")
logger = logging.getLogger(__name__)


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


def saved(rd: RunDir) -> bool:  # a trial list Tune can restore (not an empty one)
    return bool(_trial_data(rd.path))


def backed_up(rd: RunDir) -> bool:
    """Whether each Tune state file in the run directory has a copy (`backup`)."""
    live = {p.name for p in _files(rd.path)}
    return bool(live) and live <= {p.name for p in _files(rd.path / TUNE_STATE_BACKUP)}


def repair(rd: RunDir, discard: Callable[[], bool] | None = None) -> list[str]:
    """Put back the newest good copy of each Tune state file that is missing or cut short
    (checked in full: JSON parsed, pickles read to their STOP without running them).
    Returns the names repaired. Where that cannot be done and `discard()` says so (no trial
    has ended), every state file and copy goes to TUNE_STATE_LOST instead and [] is
    returned: with no trial list left (`saved`), `resume` starts the search again. So too
    for an empty trial list (a kill as Tune saved its first): Tune's restore fails on it and
    starts a new experiment of one trial instead.

    Raises:
        UserError: a file cut short with no good copy, or a search state without its
            searcher snapshot (and no `discard()` to say otherwise)."""
    try:
        repaired = _repair(rd)
        if _trial_data(rd.path) != [] or discard is None or not discard():
            return repaired
    except UserError:
        if discard is None or not discard():
            raise
    aside = rd.path / TUNE_STATE_LOST / time.strftime("%Y%m%d-%H%M%S")
    aside.mkdir(parents=True, exist_ok=True, mode=0o700)
    backup = rd.path / TUNE_STATE_BACKUP  # its copies must not come back later
    for path in _files(rd.path) + ([backup] if backup.is_dir() else []):
        os.replace(path, aside / path.name)
    logger.warning("%s: Ray Tune's saved state is beyond repair (or lists no trial) and no "
                   "trial had ended; it is set aside in %s", rd.path, TUNE_STATE_LOST)
    return []


def _repair(rd: RunDir) -> list[str]:
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
    for folder in rd.trial_dirs(begun=True):
        if f"_{trial_id}_" in folder.name:
            set_aside_folder(rd, folder)
            moved.append(folder.name)
    return moved


def set_aside_folder(rd: RunDir, folder: Path) -> None:
    """Move a trial folder of the run into LOST_TRIALS."""
    (rd.path / LOST_TRIALS).mkdir(exist_ok=True, mode=0o700)
    folder.rename(rd.path / LOST_TRIALS / folder.name)


def _named_checkpoints(data: bytes) -> set[str]:
    """The checkpoint paths a trial's pickled checkpoint manager names (read opcode by opcode,
    nothing run)."""
    found = set()
    for _, arg, _ in pickletools.genops(io.BytesIO(data)):
        if isinstance(arg, str) and os.path.isabs(arg) and _CHECKPOINT.fullmatch(
                os.path.basename(arg)):
            found.add(arg)
    return found


def _saved_row(folder: Path) -> dict:
    """The row reported with a checkpoint ({} if unreadable)."""
    try:
        row = json.loads((folder / CHECKPOINT_ROW).read_text())
    except (OSError, ValueError):
        return {}
    return row if isinstance(row, dict) and isinstance(row.get("epoch"), int) else {}


def _restart_point(trial_dir: Path, target: Path) -> None:
    """Fill `target` with the newest checkpoint of the trial that continues its logged rows
    without a gap (its epoch at most one past the last logged; that row, saved with it, is
    logged too), removing the others; with none, an empty folder."""
    logged = epoch_rows(trial_dir)
    last = max((r["epoch"] for r in logged), default=0)
    have = sorted(((_saved_row(p).get("epoch", -1), p) for p in trial_dir.iterdir()
                   if p.is_dir() and _CHECKPOINT.fullmatch(p.name)), key=lambda x: x[0])
    usable = [(e, p) for e, p in have if 0 <= e <= last + 1]
    epoch, newest = usable[-1] if usable else (None, None)
    for _, p in have:  # ahead of what was logged (a gap), or older: Tune keeps only one
        if p != newest:
            shutil.rmtree(p, ignore_errors=True)
    if newest is None:
        target.mkdir(mode=0o700)
        return
    if epoch == last + 1:  # reported to a driver killed before it logged the row
        row = {**_saved_row(newest), "trial_id": (logged[-1] if logged else {}).get(
            "trial_id", trial_dir.name)}
        with open(trial_dir / "result.json", "a") as f:
            f.write(json.dumps(row, default=str) + "\n")
    os.rename(newest, target)


def mend_checkpoints(rd: RunDir) -> list[str]:
    """Give every unfinished trial the checkpoint Tune's saved state names for it.

    Tune writes its trial list behind the trials' checkpoints, and `num_to_keep=1` deletes a
    checkpoint as soon as a newer one is saved: a driver killed in between leaves a state
    naming a checkpoint that is gone, and Tune's restore then fails that trial ("Could not
    recover from checkpoint as it does not exist on storage anymore", on every retry). The
    trial's newest checkpoint that leaves no gap in its logged epochs (`_restart_point`) is
    moved to the name the state expects; with none, the name is an empty folder and the
    trial starts over (`TuneCheckpointer.load` finds no state).
    Returns the checkpoints mended (paths)."""
    trial_data = _trial_data(rd.path)
    if not trial_data:
        return []  # repair() has already refused a cut state; anything else is Tune's
    mended = []
    for entry, meta in trial_data:
        try:
            entry, meta = json.loads(entry), json.loads(meta)
            if entry.get("status") == "TERMINATED":
                continue
            data = bytes.fromhex(meta["checkpoint_manager"]["value"])
            named = _named_checkpoints(data)
        except (ValueError, KeyError, TypeError):
            continue
        for path in sorted(named, reverse=True):  # the latest gets the newest state
            target = Path(path)
            # Only folders of this run's trials, never a path elsewhere named in the file.
            if target.exists() or target.parent.parent.resolve() != rd.path.resolve():
                continue
            if target.parent.is_dir():
                _restart_point(target.parent, target)
                mended.append(str(target))
    return mended


def _trial_data(folder: Path) -> list | None:
    """Tune's newest trial list in `folder` ([trial JSON, metadata JSON] pairs) or None."""
    states = sorted(folder.glob(EXPERIMENT_STATE_GLOB))  # named by time: the last is newest
    try:
        return json.loads(states[-1].read_text())["trial_data"] if states else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def saved_statuses(folder: Path) -> dict[str, str] | None:
    """Trial id -> status in Tune's newest trial list in `folder` (None: none readable), as
    `tune.ExperimentAnalysis(...).trials` says without its DataFrame (1.9 s at 1,000)."""
    trial_data = _trial_data(folder)
    try:
        return None if trial_data is None else {
            e["trial_id"]: e["status"] for e in (json.loads(t[0]) for t in trial_data)}
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def reopen_search(rd: RunDir) -> bool:
    """Clear the `finished` flag in Tune's saved search-generator state.

    A searcher that had said FINISHED (every point or sample handed out) is never asked again
    by a restored Tune, so a trial Tune's saved state lost, whose config the searcher queues
    again (`sync`), would never run and every `resume` ended "interrupted". The flag is one
    opcode (NEWTRUE after the key "finished"), flipped in place; the pickle is read opcode by
    opcode, never loaded (`reopened`). A reopened searcher that has nothing left says
    FINISHED again. Returns whether a flag was cleared. (Runs stored in a bucket:
    search/storage.py applies `reopened` there.)"""
    cleared = False
    for path in sorted(rd.path.glob(SEARCH_GEN_STATE_GLOB)):
        data = reopened(path.read_bytes())
        if data is not None:
            atomic_write(path, data)
            cleared = True
    return cleared


def reopened(data: bytes) -> bytes | None:
    """A search-generator state pickle with its `finished` flag cleared, or None when it was
    not set (or the bytes are not such a pickle)."""
    key = None
    try:
        for op, arg, pos in pickletools.genops(io.BytesIO(data)):
            if key == "finished" and op.name == "NEWTRUE":
                return data[:pos] + pickle.NEWFALSE + data[pos + 1:]
            key = arg if isinstance(arg, str) else (key if op.name == "MEMOIZE" else None)
    except ValueError:  # cut short or not a pickle: repair() deals with those
        return None
    return None
