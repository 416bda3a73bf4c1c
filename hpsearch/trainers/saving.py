"""Keeping a trained model's weights: a checkpointer that holds the trainer's last saved
state and writes its model weights (a state dict of tensors, `torch.load(weights_only=True)`)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import torch

from hpsearch.errors import UserError

__all__ = ["ModelKeeper", "check_replaceable"]


def check_replaceable(path: Path, flag: str) -> None:
    """A file already at `path` is replaced only if it holds model weights (a state dict of
    tensors, what `ModelKeeper.write` leaves): a file of the user's is never overwritten.

    Raises:
        UserError: `path` is a directory, or a file that holds no weights.
    """
    if path.is_dir():
        raise UserError(f"{flag} {path} is a directory; name a file")
    if not path.exists():
        return
    try:  # weights_only: nothing in the file is executed; mmap: tensors are not read
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        weights = isinstance(state, dict) and all(isinstance(v, torch.Tensor)
                                                  for v in state.values())
    except Exception:  # noqa: BLE001 (not a torch file, or not one of weights)
        weights = False
    if not weights:
        raise UserError(f"{flag} {path} exists and holds no model weights; choose another "
                        "path (nothing was written)")


class ModelKeeper:
    """A `Checkpointer` for one training outside a search: `save` keeps the latest state,
    `write` stores its `model` entry at `path`.

    Args:
        path: where the weights go (parent directories are made).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.state: dict | None = None

    @classmethod
    def for_trainer(cls, trainer, path: str | Path | None) -> "ModelKeeper | None":
        """A keeper for `trainer`, or None without a path. UserError when the trainer takes
        no checkpointer (it has no way to hand its weights over) or the path is unusable."""
        if path is None:
            return None
        cls._check_trainer(trainer)
        target = Path(path)
        check_replaceable(target, "--save-model")
        return cls(target)

    @staticmethod
    def _check_trainer(trainer) -> None:
        if not trainer.takes_checkpointer:
            raise UserError(f"trainer {trainer.name!r} takes no checkpointer, so it cannot "
                            "hand over its weights: give its train function a checkpointer "
                            "parameter and call checkpointer.save({'model': ...})")

    @classmethod
    def check_dir(cls, trainer, directory: Path, top: int) -> None:
        """`export --save-models DIR`: the weights files (RANK-seedSEED.pt) the top `top`
        configs' re-trainings would write there may replace only earlier weights."""
        cls._check_trainer(trainer)
        if directory.exists() and not directory.is_dir():
            raise UserError(f"--save-models {directory} is not a directory")
        for path in sorted(directory.glob("*-seed*.pt")) if directory.is_dir() else []:
            rank = path.name.split("-seed")[0]
            if rank.isdigit() and int(rank) <= top:
                check_replaceable(path, "--save-models")

    def load(self) -> dict | None:
        return None  # a fresh training: nothing to resume from

    def save(self, state: dict) -> None:
        self.state = state

    def write(self) -> Path:
        """Write the last saved model weights. Raises UserError when none were saved."""
        model = (self.state or {}).get("model")
        if model is None:
            raise UserError("the trainer saved no state with a 'model' entry; nothing to keep")
        tmp = None
        try:  # atomically: a kill mid-write leaves the old file or none, never half of one
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                       suffix=".tmp")
            os.close(fd)
            torch.save(model, tmp)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise UserError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)  # (gone once replaced)
        return self.path
