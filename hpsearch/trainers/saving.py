"""Keeping a trained model's weights: a checkpointer that holds the trainer's last saved
state and writes its model weights (a state dict of tensors, `torch.load(weights_only=True)`)."""

from __future__ import annotations

from pathlib import Path

import torch

from hpsearch.errors import UserError

__all__ = ["ModelKeeper"]


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
        if not trainer.takes_checkpointer:
            raise UserError(f"trainer {trainer.name!r} takes no checkpointer, so it cannot "
                            "hand over its weights: give its train function a checkpointer "
                            "parameter and call checkpointer.save({'model': ...})")
        target = Path(path)
        if target.is_dir():
            raise UserError(f"--save-model {target} is a directory; name a file")
        return cls(target)

    def load(self) -> dict | None:
        return None  # a fresh training: nothing to resume from

    def save(self, state: dict) -> None:
        self.state = state

    def write(self) -> Path:
        """Write the last saved model weights. Raises UserError when none were saved."""
        model = (self.state or {}).get("model")
        if model is None:
            raise UserError("the trainer saved no state with a 'model' entry; nothing to keep")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model, self.path)
        except OSError as exc:
            raise UserError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        return self.path
