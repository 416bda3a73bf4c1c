"""The run directory's one owner: file names, the meta file, atomic writes, permissions and
the single-writer lock. No other module spells a run file's name."""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from hpsearch.errors import UserError

__all__ = ["RunDir", "atomic_write", "RESULT_FILES"]

META = "hpsearch.json"
EPOCHS = "epochs.csv"
TRIALS = "trials.csv"
STUDY_DB = "optuna.db"
PACKING = "packing.csv"
MEASURED = "memory_measured.json"  # {config shape key: peak gpu_mem_mb measured}
PROCESSES = "ray_processes.json"  # what a local run started, for `resume` after a crash
LOCK = ".hpsearch.lock"
REPORT = "report"
EXPORTED = "exported_confirmed.csv"  # in REPORT: `export --confirm-seeds` results, test metrics
# Ray Tune's saved state: the trial list (JSON) and its search algorithm's, searcher's and
# callbacks' pickles, copied into the run directory file by file, in place; a full disk or a
# driver killed mid-copy can cut one short.
SEARCH_GEN_STATE_GLOB, EXPERIMENT_STATE_GLOB = "search_gen_state-*.json", "experiment_state-*.json"
TUNE_STATE_GLOBS = (EXPERIMENT_STATE_GLOB, SEARCH_GEN_STATE_GLOB,
                    "searcher-state-*.pkl", "basic-variant-state-*.json",
                    "callback-states-*.pkl")
TUNE_STATE_BACKUP = ".tune-state-backup"
TUNE_STATE_LOST = ".tune-state-lost"  # a state resume could not repair, set aside
CHECKPOINT_STATE, CHECKPOINT_ROW = "state.pt", "row.json"  # in a trial's Tune checkpoint
LOST_TRIALS = ".lost-trials"  # folders of trials Tune's saved state lost (run again)
# Tune names a trial's folder after the trainable (search/trainable.py: run_trial) and
# makes it before it writes params.json there.
TRIAL_PREFIX = "run_trial_"
# What the analysis reads from each Ray Tune trial folder (checkpoints are not among them).
RESULT_FILES = frozenset({"result.json", "params.json", "error.txt", "progress.csv"})
_PRIVATE_DIR, _PRIVATE_FILE = 0o700, 0o600
# A meta file larger than this is not one hpsearch wrote (a --points list is kilobytes).
_MAX_META_BYTES = 16 * 2**20


def atomic_write(path: Path, data: str | bytes, mode: int = _PRIVATE_FILE) -> None:
    """Write `data` to `path` so that a reader (or a crash) never sees half a file: a temp
    file in the same directory, fsync, then rename over the old one."""
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class RunDir:
    """One run directory (runs/NAME): where each file lives and how it is read and written.

    Args:
        path: the directory; it need not exist yet (see `create`).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).absolute()
        self._made: list[Path] = []  # what `create` made, innermost first (`discard`)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- paths ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        """Path of one of the run's files (use the module's constants for `name`)."""
        return self.path / name

    @property
    def study_url(self) -> str:
        """SQLAlchemy URL of the run's Optuna study (optuna-dashboard opens it too)."""
        return f"sqlite:///{self.path / STUDY_DB}"

    @property
    def report_dir(self) -> Path:
        return self.path / REPORT

    def exists(self) -> bool:
        """True when the directory holds a run (its meta file)."""
        return (self.path / META).is_file()

    # -- creation, lock ------------------------------------------------------------------
    def create(self) -> None:
        """Make the directory (0700). An existing directory must be empty or a run's."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} exists and is not a directory")
        if self.path.is_dir() and not self.exists():
            # (a run killed while its Ray started leaves that Ray's record: `run` ends it)
            others = [p.name for p in self.path.iterdir() if p.name not in (LOCK, PROCESSES)]
            if others:
                raise UserError(f"--out {self.path} is a non-empty directory that holds no "
                                "run; choose a new or empty directory")
        missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=_PRIVATE_DIR)
            os.chmod(self.path, _PRIVATE_DIR)
            self._made = missing
        except OSError as exc:
            raise UserError(f"cannot create run directory {self.path}: "
                            f"{exc.strerror or exc}") from None

    def discard(self) -> None:
        """Remove the directory `create` made when the run failed before writing anything,
        and the parents it made for it (while empty); nothing if it was there before."""
        if not self._made:
            return
        with contextlib.suppress(OSError):
            (self.path / LOCK).unlink(missing_ok=True)
            for folder in self._made:
                folder.rmdir()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's single-writer lock (an OS lock: it dies with the process).

        Raises:
            UserError: another process holds it; the message names its pid.
        """
        path = self.path / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, _PRIVATE_FILE)
        except OSError as exc:
            raise UserError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                raise UserError(f"{self.path} is in use by another hpsearch process "
                                f"(pid {holder}); wait for it to end") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self._sweep_partial_writes()
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _sweep_partial_writes(self) -> None:
        """Remove the temp files of `atomic_write`s a killed process never renamed
        (`.NAME.XXXX.tmp`) from the folders only the lock's holder writes: with the lock
        held, none of them is being written."""
        for folder in (self.path, self.path / TUNE_STATE_BACKUP):
            for tmp in folder.glob(".*.tmp") if folder.is_dir() else []:
                with contextlib.suppress(OSError):
                    tmp.unlink()

    def check_trusted(self) -> None:
        """Refuse a directory another user owns or others may write: resuming unpickles
        its state (Ray Tune's and the searcher's), which is code as much as data."""
        st = self.path.stat()
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            raise UserError(f"{self.path} is not owned by you or is writable by others; "
                            "resume unpickles its state, so it only resumes your own runs")

    # -- meta ----------------------------------------------------------------------------
    def read_meta(self) -> dict:
        """The run's hpsearch.json, or one clear UserError."""
        if not self.path.is_dir():
            raise UserError(f"run directory not found: {self.path}")
        meta_file = self.path / META
        if not meta_file.is_file():
            raise UserError(f"{self.path} is not an hpsearch run (no {META})")
        if meta_file.stat().st_size > _MAX_META_BYTES:
            raise UserError(f"{meta_file} is too large to be an hpsearch run file")
        try:
            meta = json.loads(meta_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError(f"{meta_file} is not valid JSON") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("trainer"), str):
            raise UserError(f"{meta_file} is not an hpsearch run file (no trainer)")
        return meta

    def write_meta(self, meta: dict) -> None:
        atomic_write(self.path / META, json.dumps(meta, indent=2, default=str))

    def settled(self, meta: dict) -> bool:
        """Nothing left for `resume` to do: the run finished (its tables are written before
        `finished` is), and no private Ray it started is on record (a clean end removes
        the record; a killed driver's is ended by `resume`)."""
        return bool(meta.get("finished")) and not self.file(PROCESSES).exists() and all(
            self.file(name).is_file() for name in (EPOCHS, TRIALS))

    # -- other files ---------------------------------------------------------------------
    def read_json(self, name: str, default: Any = None) -> Any:
        try:
            return json.loads((self.path / name).read_text())
        except (OSError, ValueError):
            return default

    def write_json(self, name: str, value: Any) -> None:
        atomic_write(self.path / name, json.dumps(value, indent=1))

    def remove(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)

    def write_table(self, name: str, frame) -> None:
        """A pandas frame as CSV, atomically."""
        atomic_write(self.path / name, frame.to_csv(index=False))

    def append_row(self, name: str, header: list[str], row: list) -> None:
        """Append one CSV row (with the header first when the file is new)."""
        path = self.path / name
        buf = io.StringIO()
        writer = csv.writer(buf)
        if not path.exists():
            writer.writerow(header)
        writer.writerow(row)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _PRIVATE_FILE)
        with os.fdopen(fd, "a", newline="") as f:
            f.write(buf.getvalue())

    # -- trial folders (written by Ray Tune, or copied down from cloud storage) ------------
    def trial_dirs(self, begun: bool = False) -> list[Path]:
        """Ray Tune's trial folders (those with a params.json), in name order; `begun`: also
        those Tune made but had not written params.json to yet (a driver killed between)."""
        if not self.path.is_dir():
            return []
        return sorted(p for p in self.path.iterdir() if (p / "params.json").is_file() or (
            begun and p.is_dir() and p.name.startswith(TRIAL_PREFIX)))

    def write_trial_file(self, trial: str, name: str, data: bytes) -> None:
        """Store one of a trial's result files (copied from cloud storage)."""
        if name not in RESULT_FILES or trial in ("", ".", "..") or "/" in trial:
            raise ValueError(f"not a trial result file: {trial}/{name}")
        folder = self.path / trial
        folder.mkdir(exist_ok=True, mode=_PRIVATE_DIR)
        atomic_write(folder / name, data)

    def trial_file_size(self, trial: str, name: str) -> int | None:
        path = self.path / trial / name
        return path.stat().st_size if path.is_file() else None
