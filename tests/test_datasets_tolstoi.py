"""Tolstoi: DeepOBS's line cuts and vocabulary, stream batching, splits and caching."""

import collections
import math
import os
import pickle

import numpy as np
import pytest
import torch

from datafiles import gutenberg_lines, write_tolstoi_text
from deepobs.datasets import Tolstoi
from deepobs.datasets.tolstoi import build_vocabulary, cut_lines, encode_text
from deepobs.errors import DataError


class TinyTolstoi(Tolstoi):
    valid_size = 1000
    train_eval_size = 600


def test_line_cuts_follow_the_three_sed_commands():
    # 65,000 numbered lines: the cuts remove lines 1-29, then 5-775 and 63850-64207 of
    # the intermediate results, i.e. original lines 1-29, 34-804 and 64650-65007 (1-based).
    raw = b"".join(b"%d\r\n" % k for k in range(1, 65_001))
    kept = [int(line) for line in cut_lines(raw).decode().split("\r\n") if line]
    expected = list(range(30, 34)) + list(range(805, 64_650)) + list(range(65_008, 65_001))
    assert kept == expected
    assert cut_lines(raw).endswith(b"\r\n")


def test_vocabulary_is_counter_order_and_split_is_ceil_of_80_percent():
    text = "abracadabra\r\n cbd\u00e9!"
    vocabulary, ids = build_vocabulary(text)
    assert list(vocabulary) == [char for char, _ in collections.Counter(text).most_common()]
    assert "".join(vocabulary[i] for i in ids) == text
    raw = ("\r\n".join(gutenberg_lines(body_lines=101)) + "\r\n").encode()
    train, test, vocab = encode_text(raw)
    total = train.size + test.size
    assert train.size == math.ceil(0.8 * total)
    body = cut_lines(raw).decode()
    assert body.startswith("WAR AND PEACE\r\n\r\nBy Leo Tolstoy/Tolstoi")
    assert total == len(body) and "\r" in vocab


def test_stream_batches_targets_shift_and_rows_continue(tmp_path):
    write_tolstoi_text(tmp_path)
    data = TinyTolstoi(4, seq_length=10, data_dir=tmp_path, verify=False, protocol="1.1")
    stream = data.streams["train"]
    batches = list(data.batches("train"))
    assert len(batches) == (stream.numel() - 1) // 40 == data.num_batches("train")
    row_length = len(batches) * 10
    for index, (inputs, targets) in enumerate(batches):
        assert inputs.shape == (4, 10) and inputs.dtype == torch.int64 and targets.dtype == torch.int64
        assert torch.equal(targets[:, :-1], inputs[:, 1:])
        for row in range(4):
            start = row * row_length + index * 10
            assert torch.equal(inputs[row], stream[start:start + 10].long())
            assert torch.equal(targets[row], stream[start + 1:start + 11].long())
    # Never shuffled: a second pass (and another seed) gives the same batches.
    again = TinyTolstoi(4, seq_length=10, data_dir=tmp_path, verify=False, protocol="1.1", random_seed=7)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again.batches("train")))


def test_validation_train_eval_and_eval_batch_size(tmp_path):
    write_tolstoi_text(tmp_path)
    full = TinyTolstoi(4, seq_length=10, data_dir=tmp_path, verify=False, protocol="1.1")
    data = TinyTolstoi(4, seq_length=10, data_dir=tmp_path, verify=False, eval_batch_size=64)
    train_chars = full.streams["train"]
    assert torch.equal(data.streams["valid"], train_chars[:1000])
    assert torch.equal(data.streams["train"], train_chars[1000:])
    assert torch.equal(data.streams["test"], full.streams["test"])
    # Train-eval: the first train_eval_size // (4*10) batches of the training stream.
    assert data.num_batches("train_eval") == 600 // 40
    train_eval = list(data.batches("train_eval"))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(train_eval, data.batches("train")))
    # Evaluation keeps the training batch size (the LSTM state is carried row-wise).
    assert all(inputs.shape == (4, 10) for inputs, _ in data.eval_batches("valid"))
    assert len(list(data.eval_batches("valid"))) == 999 // 40


def test_prepared_deepobs_arrays_are_read_as_they_are(tmp_path):
    folder = tmp_path / "tolstoi"
    folder.mkdir()
    np.save(folder / "train.npy", np.arange(2001) % 83)
    np.save(folder / "test.npy", np.arange(801) % 83)
    with open(folder / "vocab.pkl", "wb") as stream:
        pickle.dump(tuple(chr(32 + k) for k in range(83)), stream)
    data = TinyTolstoi(2, seq_length=10, data_dir=tmp_path, protocol="1.1")
    assert data.streams["train"].numel() == 2001 and len(data.vocabulary) == 83
    assert data.num_batches("train") == 100 and data.num_batches("test") == 40


def test_read_only_data_dir_caches_in_the_user_cache(tmp_path, monkeypatch):
    raw = write_tolstoi_text(tmp_path / "data")
    os.chmod(tmp_path / "data" / "tolstoi", 0o555)
    os.chmod(tmp_path / "data", 0o555)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    try:
        first = TinyTolstoi(2, seq_length=5, data_dir=tmp_path / "data", verify=False)
        cached = list((tmp_path / "cache" / "deepobs").glob("tolstoi-*.npz"))
        assert len(cached) == 1 and not (tmp_path / "data" / ".cache").exists()
        second = TinyTolstoi(2, seq_length=5, data_dir=tmp_path / "data", verify=False)
        assert torch.equal(first.streams["train"], second.streams["train"])
        assert first.vocabulary == second.vocabulary
        expected_train, _, _ = encode_text(raw)
        assert torch.equal(first.streams["valid"], torch.from_numpy(expected_train[:1000].astype(np.uint8)))
    finally:
        os.chmod(tmp_path / "data", 0o755)
        os.chmod(tmp_path / "data" / "tolstoi", 0o755)


def test_missing_and_altered_text(tmp_path):
    with pytest.raises(DataError, match=r"missing data file .*war-and-peace.txt.*--only tolstoi"):
        Tolstoi(50, data_dir=tmp_path)
    write_tolstoi_text(tmp_path)
    with pytest.raises(DataError, match=r"war-and-peace.txt.*official"):
        Tolstoi(50, data_dir=tmp_path)
    with pytest.raises(DataError, match="too short"):
        Tolstoi(50, data_dir=tmp_path, verify=False)  # 653,237 validation chars do not fit


def test_fake_data_has_the_real_format():
    data = Tolstoi(3, seq_length=7, fake_data=40)
    inputs, targets = next(data.batches("train"))
    assert inputs.shape == (3, 7) and int(inputs.max()) < Tolstoi.vocab_size == 83
    assert data.num_batches("valid") >= 1 and data.num_batches("test") >= 1
