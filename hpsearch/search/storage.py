"""Where Ray Tune keeps a run's trials: a directory (local, or shared by every node), or a
cloud URI (s3://, gs://, abfs://, hdfs://) that pyarrow resolves, as Ray Tune does. With a
URI the run directory (hpsearch.json, optuna.db) stays local and trial results are copied
down from the URI for the analysis; checkpoints stay in the bucket."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow
import pyarrow.fs as pafs

from hpsearch.errors import UserError
from hpsearch.rundir import RESULT_FILES, RunDir, tune_state
from hpsearch.rundir.layout import SEARCH_GEN_STATE_GLOB

logger = logging.getLogger(__name__)
__all__ = ["is_uri", "check_uri", "experiment_uri", "pull_results", "recorded_experiment",
           "redact", "credentials_hidden", "reopen_search", "check_shared"]

# Ray Tune copies these from the driver's environment into every trial actor's runtime env,
# which Ray's runtime-env agent then logs in plain text. Trial processes inherit them from
# their node's environment anyway (the local Ray was started with them).
_SECRET_ENV = {"AWS_ACCESS_KEY_ID": "aws_access_key_id",
               "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
               "AWS_SESSION_TOKEN": "aws_session_token", "AWS_SECURITY_TOKEN": None}


@contextlib.contextmanager
def credentials_hidden():
    """While Tune runs: cloud credentials move from the driver's environment into a private
    (0600) AWS shared-credentials file the driver's S3 client reads instead, so Tune has
    none to copy into Ray's runtime env and logs. Everything is put back afterwards."""
    found = {k: os.environ[k] for k in _SECRET_ENV if k in os.environ}
    if not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(found):
        yield
        return
    keep = ("AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE")
    saved = {k: os.environ.get(k) for k in keep}
    folder = tempfile.mkdtemp(prefix="hpsearch-cred-")  # 0700
    path = os.path.join(folder, "credentials")
    lines = ["[default]"] + [f"{_SECRET_ENV[k]} = {v}" for k, v in found.items()
                             if _SECRET_ENV[k]]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    for k in found:
        del os.environ[k]
    os.environ.update(AWS_SHARED_CREDENTIALS_FILE=path, AWS_PROFILE="default")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        os.environ.update(found)
        shutil.rmtree(folder, ignore_errors=True)


def is_uri(storage: str | None) -> bool:
    return bool(storage) and "://" in storage


def redact(uri: str) -> str:
    """The URI without any user:password part and query string (safe to print)."""
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))


def _resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    parts = urlsplit(uri)
    if parts.username or parts.password:
        raise UserError(f"storage {redact(uri)}: do not put credentials in the URI (they would "
                        "be saved in hpsearch.json); use the provider's environment variables "
                        "or config files (e.g. AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS)")
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError, ValueError, OSError) as exc:
        raise UserError(f"storage {redact(uri)}: {str(exc).splitlines()[0]}") from None


def check_uri(uri: str) -> None:
    """Fail early, before Ray starts, when `uri` has an unknown scheme or cannot be written
    (no bucket, no credentials): a probe object is written under it and deleted."""
    fs, path = _resolve(uri)
    probe = f"{path.rstrip('/')}/.hpsearch-probe-{uuid.uuid4().hex[:8]}"
    try:
        fs.create_dir(path, recursive=True)
        with fs.open_output_stream(probe) as f:
            f.write(b"hpsearch write check\n")
        fs.delete_file(probe)
    except (OSError, pyarrow.ArrowException) as exc:
        raise UserError(f"storage {redact(uri)} is not writable: "
                        f"{str(exc).splitlines()[0]}") from None


def experiment_uri(storage: str, name: str) -> str:
    """`storage`/`name`, keeping the URI's query (e.g. ?endpoint_override=...) at the end."""
    parts = urlsplit(storage)
    path = f"{parts.path.rstrip('/')}/{name}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def recorded_experiment(meta: dict) -> str:
    """Where a run with URI storage keeps its trials, from its hpsearch.json: the URI
    recorded at start (so a renamed local run directory still finds its bucket prefix)."""
    return meta.get("experiment") or experiment_uri(meta["storage"], Path(meta["run_dir"]).name)


def pull_results(uri: str, rd: RunDir | str | Path) -> int:
    """Copy every trial's result files from the experiment at `uri` into the run directory
    (same layout as a local run, so the analysis reads it unchanged).

    Returns:
        How many files were copied (files already here at the same size are skipped).
    """
    rd = rd if isinstance(rd, RunDir) else RunDir(rd)
    fs, root = _resolve(uri)
    root = root.rstrip("/")
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except (OSError, pyarrow.ArrowException) as exc:
        raise UserError(f"cannot read results from {redact(uri)}: "
                        f"{str(exc).splitlines()[0]}") from None
    copied = 0
    for info in infos:
        rel = info.path[len(root):].lstrip("/")
        parts = rel.split("/")
        # Only <trial>/<result file>: never a checkpoint, never outside the run directory.
        if (info.type != pafs.FileType.File or len(parts) != 2 or parts[1] not in RESULT_FILES
                or parts[0] in ("", ".", "..")):
            continue
        if rd.trial_file_size(parts[0], parts[1]) == info.size:
            continue  # result files only grow: same size, same content
        with fs.open_input_stream(info.path) as src:
            rd.write_trial_file(parts[0], parts[1], src.read())
        copied += 1
    logger.info("copied %d result files from %s", copied, redact(uri))
    return copied


def reopen_search(uri: str) -> bool:
    """`tune_state.reopen_search` for a run whose Tune state lives at `uri` (a bucket): clear
    the `finished` flag of each saved search-generator state there, so that a restored Tune
    asks the searcher again for the config of a trial its saved state lost (each object is
    rewritten whole, one PUT). Returns whether a flag was cleared."""
    fs, root = _resolve(uri)
    root = root.rstrip("/")
    prefix, suffix = SEARCH_GEN_STATE_GLOB.split("*")
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
        cleared = False
        for info in infos:
            if (info.type == pafs.FileType.File and info.base_name.startswith(prefix)
                    and info.base_name.endswith(suffix)):
                with fs.open_input_stream(info.path) as src:
                    data = tune_state.reopened(src.read())
                if data is not None:
                    with fs.open_output_stream(info.path) as dst:
                        dst.write(data)
                    cleared = True
    except (OSError, pyarrow.ArrowException) as exc:
        raise UserError(f"cannot read Ray Tune's state at {redact(uri)}: "
                        f"{str(exc).splitlines()[0]}") from None
    return cleared


def check_shared(cfg, run_dir: Path) -> None:
    """Trials on other nodes need storage they all reach. Through Ray Client (ray://) Tune's
    driver, the Optuna study included, runs on the head node: the run directory itself must
    be on a directory this machine and the cluster both mount. (Ray must be connected unless
    the address is ray://.)"""
    from ray.util.client import ray as ray_client  # Ray's import (~0.3 s): not on error paths

    from hpsearch.search import cluster

    client = ray_client.is_connected() or (cfg.address or "").startswith("ray://")
    if not (client or cluster.is_multi_node()):
        return
    if is_uri(cfg.storage) and not client:
        return
    shared = Path(cfg.storage).resolve() if cfg.storage and not is_uri(cfg.storage) \
        else None
    if shared is not None and shared in (run_dir, *run_dir.parents):
        return
    if client:
        raise UserError("through ray:// Tune runs on the head node: pass --storage DIR, a "
                        "directory mounted here and on the cluster (the run directory goes "
                        "inside it), or run hpsearch on a cluster node with --address auto "
                        "(e.g. via 'ray job submit')")
    raise UserError("a multi-node cluster needs shared storage: pass --storage DIR "
                    "(mounted on every node; the run directory goes inside it) or a "
                    "cloud URI (s3://bucket/prefix)")
