"""Text to train on: the embedded default (no download) or any UTF-8 text a user gives.

Default: CPython 3.11's `pydoc_data.topics` — 79 documents of English prose about Python
(about 139k GPT-2 tokens, 5,170 distinct ids), pinned: shipped in gpt2viz/text/data/ (PSF licence,
see its README) and checked against DEFAULT_SHA256, because every Python release edits its own
copy and would otherwise train on other tokens (3.12's unigram baseline is 5.753, not 5.378).

Split: the token stream is cut into blocks of SPLIT_BLOCK tokens; every tenth block
(index % 10 == 9) is validation, the rest is training. Interleaving keeps both splits drawn
from every part of the text, and no validation token is ever trained on.

Vocabulary: a model trained here only embeds the GPT-2 ids that occur in the training split
(5k rows instead of 50k: each step several times faster), plus one "unknown" id for every
other GPT-2 id. `Vocabulary` maps both ways and is saved with each checkpoint.
"""
from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from gpt2viz.core.staging import write_whole
from gpt2viz.text.tokenizer import EOT, get_tokenizer

SPLIT_BLOCK = 1024
MIN_TOKENS = 4096  # below this there is not enough text for a training and a validation split


class CorpusError(ValueError):
    """Text that cannot be trained on; the message says why and what to do."""


DEFAULT_PATH = Path(__file__).parent / "data" / "pydoc_topics_3.11.txt.gz"
DEFAULT_SHA256 = "71f2ff5d99bdc1f9c48c5c2353ad138201c5ca1c377e0226857ef8fa89b8bcee"


def default_text() -> str:
    """The pinned corpus; a damaged copy is an error, never silently other tokens."""
    data = gzip.decompress(DEFAULT_PATH.read_bytes())
    if hashlib.sha256(data).hexdigest() != DEFAULT_SHA256:
        raise CorpusError(f"{DEFAULT_PATH} is damaged (its sha256 is not {DEFAULT_SHA256[:12]}…); "
                          f"restore it from the project's repository.")
    return data.decode("utf-8")


def read_text(path) -> str:
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path} is not a file.")
    return decode_text(path.read_bytes(), str(path))


def decode_text(data: bytes, name: str = "the text") -> str:
    """UTF-8 text, or CorpusError saying what is wrong: empty, binary, another encoding."""
    if not data.strip():
        raise CorpusError(f"{name} is empty: give some text to train on.")
    if b"\x00" in data[:65536]:
        raise CorpusError(f"{name} looks binary (it holds NUL bytes): give a plain text file.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(f"{name} is not UTF-8 text (byte {err.start} is invalid); "
                          f"save it as UTF-8 and try again.") from None


@dataclass(frozen=True)
class Corpus:
    name: str
    train: torch.Tensor  # (N_train,) compact ids
    val: torch.Tensor  # (N_val,) compact ids
    vocab: "Vocabulary"
    sha256: str

    @classmethod
    def from_text(cls, text: str, name: str = "text") -> "Corpus":
        ids = get_tokenizer().encode(text)
        if len(ids) < MIN_TOKENS:
            raise CorpusError(f"{name} has {len(ids)} GPT-2 tokens; training needs at least "
                              f"{MIN_TOKENS} (about {MIN_TOKENS * 4 // 1000} KB of English). "
                              f"Give a longer text.")
        train_ids, val_ids = split_ids(ids)
        vocab = Vocabulary(sorted(set(train_ids.tolist())))
        return cls(name=name, train=vocab.to_compact(train_ids), val=vocab.to_compact(val_ids),
                   vocab=vocab, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())

    @classmethod
    def default(cls) -> "Corpus":
        return cls.from_text(default_text(), "pydoc_data.topics")

    @property
    def id(self) -> str:
        """How a link names a corpus: never its text."""
        return f"{self.name}@{self.sha256[:12]}"

    def describe(self) -> str:
        return (f"{self.name}: {len(self.train) + len(self.val):,} GPT-2 tokens, split "
                f"{len(self.train):,} training / {len(self.val):,} validation (every tenth block of "
                f"{SPLIT_BLOCK}); vocabulary {self.vocab.size - 1:,} distinct ids + 1 unknown")

    def unigram_loss(self) -> float:
        """Cross-entropy (nats) of the validation tokens under the training split's token
        frequencies, add-one smoothed: what a model that ignores context would score."""
        counts = torch.bincount(self.train, minlength=self.vocab.size).double() + 1.0
        log_probs = (counts / counts.sum()).log()
        return float(-log_probs[self.val].mean())


def split_ids(ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """GPT-2 ids -> (training, validation): every tenth block of SPLIT_BLOCK is validation."""
    blocks = torch.tensor(ids).split(SPLIT_BLOCK)
    return (torch.cat([b for i, b in enumerate(blocks) if i % 10 != 9]),
            torch.cat([b for i, b in enumerate(blocks) if i % 10 == 9]))


@lru_cache(maxsize=4)
def validation_blocks(text: str) -> tuple[str, ...]:
    """The validation split of `text` as the blocks it is made of, each as text. Consecutive
    blocks are ten blocks apart in the text, so a long validation text is unrelated pieces
    joined; a chart along it marks where they join. Kept: the StreamingLLM page asks on every
    rerun, and the whole text is tokenized for it."""
    blocks = torch.tensor(get_tokenizer().encode(text)).split(SPLIT_BLOCK)
    return tuple(get_tokenizer().decode(b.tolist()) for i, b in enumerate(blocks) if i % 10 == 9)


def validation_text(text: str) -> str:
    """The validation split of `text` as text (its blocks joined), for models with another
    tokenizer (gpt2viz.weights.pretrained) to score the same words."""
    return get_tokenizer().decode(split_ids(get_tokenizer().encode(text))[1].tolist())


def store_text(folder: Path, text: str) -> None:
    """Keep a user's text (folder/text.txt) so a link naming its hash finds it again; written
    to a staging folder and renamed into place, so no half-written copy survives."""
    if stored_text(folder) is None:
        write_whole(folder, lambda staging: (staging / "text.txt").write_text(text, encoding="utf-8"),
                    lambda target: (target / "text.txt").is_file())


def stored_text(folder: Path) -> str | None:
    path = folder / "text.txt"
    return path.read_text(encoding="utf-8") if path.is_file() else None


class Vocabulary:
    """GPT-2 ids <-> compact ids 0..n-1, and n = the unknown id for every other GPT-2 id."""

    def __init__(self, gpt2_ids: list[int]):
        self.gpt2_ids = list(gpt2_ids)
        self.unknown = len(self.gpt2_ids)
        self.size = self.unknown + 1
        self._to_compact = torch.full((50257,), self.unknown, dtype=torch.long)
        self._to_compact[torch.tensor(self.gpt2_ids, dtype=torch.long)] = torch.arange(self.unknown)
        self._to_gpt2 = torch.tensor(self.gpt2_ids + [EOT], dtype=torch.long)

    def to_compact(self, gpt2_ids) -> torch.Tensor:
        return self._to_compact[torch.as_tensor(gpt2_ids, dtype=torch.long)]

    def to_gpt2(self, compact_ids) -> torch.Tensor:
        """Unknown maps to <|endoftext|>; callers that show tokens mark it via `unknown`."""
        return self._to_gpt2[torch.as_tensor(compact_ids, dtype=torch.long)]
