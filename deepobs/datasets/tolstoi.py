"""Tolstoi's War and Peace as character ids, batched as DeepOBS's stateful char-RNN needs.

The raw Project Gutenberg text is cut and encoded exactly as DeepOBS's
``deepobs_prepare_data.sh`` + ``_tolstoi_preprocess.py`` do (docs/datasets.md),
once, and the arrays are cached; DeepOBS's prepared ``train.npy``/``test.npy``/``vocab.pkl``
are read as they are.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import zipfile
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from deepobs.datasets.base import DataSet, Split
from deepobs.datasets.files import cache_dir, dataset_dir, require_file, verify_file
from deepobs.errors import ConfigurationError, DataError

RAW_TEXT = "war-and-peace.txt"
#: Lines DeepOBS deletes with three ``sed -i 'a,bd'`` commands, one after the other
#: (1-based, inclusive, each relative to the result of the previous command).
LINE_CUTS = ((1, 29), (5, 775), (63850, 64207))
TEST_FRACTION = 0.2
#: Bumped when the derivation changes, so stale cache files are not read.
CACHE_VERSION = 1


def cut_lines(raw: bytes) -> bytes:
    """Apply DeepOBS's ``sed`` line deletions to the raw text (header, contents, licence)."""
    lines = raw.split(b"\n")
    trailing_newline = lines and lines[-1] == b""
    if trailing_newline:
        lines = lines[:-1]
    for first, last in LINE_CUTS:
        lines = lines[: first - 1] + lines[last:]
    return b"\n".join(lines) + (b"\n" if trailing_newline else b"")


def build_vocabulary(text: str) -> tuple[tuple, np.ndarray]:
    """Vocabulary sorted by descending count, ties in order of first occurrence, and ids.

    Same order as ``collections.Counter(text).most_common()``, computed with numpy.
    """
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    unique, first_index, inverse, counts = np.unique(
        codes, return_index=True, return_inverse=True, return_counts=True
    )
    order = np.lexsort((first_index, -counts))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    vocabulary = tuple(chr(int(code)) for code in unique[order])
    return vocabulary, rank[inverse].astype(np.int64)


def encode_text(raw: bytes) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Train ids, test ids and vocabulary from the raw War and Peace bytes.

    UTF-8 decoding keeps the ``\\r`` of the CRLF line ends (DeepOBS reads with
    ``codecs.open``, without newline translation); the first ⌈0.8·N⌉ characters train.
    """
    try:
        text = cut_lines(raw).decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"tolstoi: the text is not UTF-8 ({error})") from None
    vocabulary, ids = build_vocabulary(text)
    train_size = int(math.ceil((1.0 - TEST_FRACTION) * ids.size))
    return ids[:train_size], ids[train_size:], vocabulary


def stream_layout(stream: torch.Tensor, batch_size: int, seq_length: int) -> Split:
    """Arrange a character stream as DeepOBS does for a stateful RNN.

    n = ⌊(len−1)/(batch_size·seq_length)⌋ batches; inputs = the first n·batch_size·seq_length
    characters, targets = the same shifted by one; both reshaped to (batch_size, −1), so
    batch i is columns [i·seq_length, (i+1)·seq_length) and every row continues the row
    of the previous batch.
    """
    num_batches = max((stream.numel() - 1) // (batch_size * seq_length), 0)
    used = num_batches * batch_size * seq_length
    inputs = stream[:used].reshape(batch_size, -1)
    targets = stream[1:used + 1].reshape(batch_size, -1)
    return Split(inputs, targets)


class Tolstoi(DataSet):
    """War and Peace as character ids for the char-RNN: 83 symbols, stateful batching.

    Sizes (docs/datasets.md): train 2,612,948 and test 653,237 characters;
    protocol 1.2 holds out the *first* 653,237 training characters as validation, the
    training stream is the remaining 1,959,711 (783 steps at batch 50, sequence 50;
    1,045 under protocol 1.1).

    Batches are int64 (batch_size, seq_length) inputs and targets, targets = inputs
    shifted by one character. They come in stream order, never shuffled: row r of
    consecutive batches is one contiguous piece of text, so a carried LSTM state makes
    sense. Every pass (evaluation too) uses the training batch size; ``eval_batch_size``
    is ignored because it would change the rows and so the carried state.

    Train-eval: as DeepOBS's TF version, the first ⌊train_eval_size/(batch_size·seq_length)⌋
    batches of the training stream (train_eval_size = 653,237 characters, the size of the
    test set): a prefix of the training pass, disjoint from the validation characters.

    Files: ``<data_dir>/tolstoi/war-and-peace.txt`` (raw text; the arrays are derived
    on first use and cached), or DeepOBS's prepared ``tolstoi/{train,test}.npy`` and
    ``vocab.pkl``.

    Args:
        seq_length: characters per sequence (DeepOBS: 50).
        verify: check the official raw text's checksum (once per file version).
        fake_data: N random "examples" = sequences of ``seq_length`` characters.
    """

    name = "tolstoi"
    vocab_size = 83
    num_classes = 83
    input_dtype = torch.uint8
    train_eval_size = 653_237
    valid_size = 653_237
    #: Batches are never shuffled: the model carries its state from batch to batch.
    stateful = True

    def __init__(self, batch_size, *, seq_length: int = 50, verify: bool = True,
                 train_eval_size: Optional[int] = None, **kwargs):
        if int(seq_length) < 1:
            raise ConfigurationError(f"tolstoi: seq_length must be a positive integer, got {seq_length}")
        self.seq_length = int(seq_length)
        self.verify = verify
        self.vocabulary: Optional[tuple] = None
        self.streams: dict = {}
        super().__init__(batch_size, **kwargs)
        requested = type(self).train_eval_size if train_eval_size is None else int(train_eval_size)
        self.train_eval_size = min(requested, self.streams["train"].numel())

    # ------------------------------------------------------------------ loading
    def _load_raw(self) -> dict:
        train, test, self.vocabulary = self._load_arrays()
        if len(self.vocabulary) > 256:
            raise DataError(f"tolstoi: vocabulary of {len(self.vocabulary)} symbols; at most 256 fit")
        return {"train": torch.from_numpy(train.astype(np.uint8)),
                "test": torch.from_numpy(test.astype(np.uint8))}

    def _fake_raw(self, size: int) -> dict:
        generator = torch.Generator().manual_seed(0)

        def chars(sequences):
            length = sequences * self.seq_length + 1
            return torch.randint(0, self.vocab_size, (length,), generator=generator, dtype=torch.uint8)

        return {"train": chars(size), "test": chars(max(size // 2, 1))}

    def _load_arrays(self) -> tuple[np.ndarray, np.ndarray, tuple]:
        folder = dataset_dir(self.data_dir, "tolstoi")
        prepared = [folder / "train.npy", folder / "test.npy", folder / "vocab.pkl"]
        if all(path.is_file() for path in prepared):
            return self._read_prepared(*prepared)
        raw_path = folder / RAW_TEXT
        if not raw_path.is_file() and (folder / "input.txt").is_file():
            raw_path = folder / "input.txt"
        require_file(raw_path, self.name, self.data_dir)
        if self.verify:
            verify_file(raw_path, self.name, self.data_dir)
        raw = raw_path.read_bytes()
        if raw_path.name == "input.txt" and b"Project Gutenberg" not in raw[:1000]:
            raise DataError(f"tolstoi: {raw_path} is already cut (DeepOBS's input.txt) but its "
                            "train.npy/test.npy/vocab.pkl are missing; provide war-and-peace.txt")
        return self._derive_cached(raw)

    def _read_prepared(self, train_path: Path, test_path: Path, vocab_path: Path):
        try:
            train, test = np.load(train_path), np.load(test_path)
            with open(vocab_path, "rb") as stream:
                vocabulary = tuple(pickle.load(stream))
        except (OSError, ValueError, EOFError, pickle.UnpicklingError) as error:
            raise DataError(f"tolstoi: corrupt prepared arrays in {train_path.parent}: {error}") from None
        if train.ndim != 1 or test.ndim != 1:
            raise DataError(f"tolstoi: {train_path} and {test_path} must be 1-D id arrays")
        return train, test, vocabulary

    def _derive_cached(self, raw: bytes):
        """Encode the text, or read the arrays derived from the same bytes before."""
        key = hashlib.sha256(raw).hexdigest()[:16]
        cache_path = cache_dir(self.data_dir) / f"tolstoi-v{CACHE_VERSION}-{key}.npz"
        try:
            with np.load(cache_path) as cached:
                return cached["train"], cached["test"], tuple(str(cached["vocabulary"]))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
            pass
        train, test, vocabulary = encode_text(raw)
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = cache_path.with_name(cache_path.name + ".tmp.npz")
            np.savez(temporary, train=train.astype(np.uint8), test=test.astype(np.uint8),
                     vocabulary=np.array("".join(vocabulary)))
            temporary.replace(cache_path)
        except OSError:
            pass  # a read-only place: recomputing takes well under a second
        return train, test, vocabulary

    def _build_splits(self) -> dict:
        raw = self._fake_raw(int(self.fake_data)) if self.fake_data else self._load_raw()
        streams = {"train": raw["train"], "test": raw["test"]}
        if self.protocol == "1.2":
            valid_size = self.valid_size
            if self.fake_data:
                valid_size = max(int(self.fake_data) // 5, 1) * self.seq_length
            if not 0 < valid_size < streams["train"].numel():
                raise DataError(f"tolstoi: the training text ({streams['train'].numel():,} characters) "
                                f"is too short to hold out {valid_size:,} for validation")
            streams["valid"] = streams["train"][:valid_size]
            streams["train"] = streams["train"][valid_size:]
        self.streams = {name: stream.to(self.device) for name, stream in streams.items()}
        return {name: stream_layout(stream, self.batch_size, self.seq_length)
                for name, stream in self.streams.items()}

    # ---------------------------------------------------------------- batching
    def num_batches(self, split: str) -> int:
        """Batches of one pass; train-eval is a prefix of the training stream."""
        if split == "train_eval":
            available = self.splits["train"].inputs.shape[1] // self.seq_length
            return min(self.train_eval_size // (self.batch_size * self.seq_length), available)
        return self._split(split).inputs.shape[1] // self.seq_length

    def batches(self, split: str, batch_size: Optional[int] = None) -> Iterator[tuple]:
        """Yield ``(inputs, targets)`` int64 (batch_size, seq_length) in stream order.

        ``batch_size`` is ignored: the rows are fixed by the training batch size.
        """
        data = self._split(split)
        for index in range(self.num_batches(split)):
            columns = slice(index * self.seq_length, (index + 1) * self.seq_length)
            yield data.inputs[:, columns].long(), data.targets[:, columns].long()

    def eval_batches(self, split: str) -> Iterator[tuple]:
        """Evaluation passes use the training batch size (the LSTM state is row-wise)."""
        return self.batches(split)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={stream.numel()} chars" for name, stream in self.streams.items())
        return f"Tolstoi(batch_size={self.batch_size}, seq_length={self.seq_length}, protocol={self.protocol}, {sizes})"


__all__ = ["Tolstoi", "cut_lines", "build_vocabulary", "encode_text", "stream_layout"]
