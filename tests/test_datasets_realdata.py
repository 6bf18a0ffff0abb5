"""The loaders on the real MNIST, Fashion-MNIST and War and Peace files of ../shared/data."""

import pytest
import torch

from deepobs.datasets import MNIST, FashionMNIST, Tolstoi
from deepobs.datasets import prepare

pytestmark = pytest.mark.realdata

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """The shared folder is read-only: derived arrays go to a private user cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_mnist_label_counts_and_splits(shared_data):
    data = MNIST(128, data_dir=shared_data, protocol="1.1")
    assert torch.bincount(data.splits["train"].targets).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(data.splits["test"].targets).tolist() == MNIST_TEST_COUNTS
    assert data.num_batches("test") == 78  # drop-last: 9,984 test images at batch 128
    valid = MNIST(64, data_dir=shared_data)
    assert len(valid.splits["train"]) == 50_000 and len(valid.splits["valid"]) == 10_000
    assert valid.num_batches("train") == 781  # mnist_vae steps per epoch under v1.2
    inputs, _ = next(valid.batches("train"))
    assert inputs.shape == (64, 1, 28, 28) and 0.0 <= float(inputs.min()) and float(inputs.max()) <= 1.0


def test_fashion_mnist_label_counts(shared_data):
    data = FashionMNIST(128, data_dir=shared_data, protocol="1.1")
    assert torch.bincount(data.splits["train"].targets).tolist() == [6000] * 10
    assert torch.bincount(data.splits["test"].targets).tolist() == [1000] * 10
    assert data.num_batches("train") == 468
    assert FashionMNIST(128, data_dir=shared_data).num_batches("train") == 390


def test_tolstoi_sizes_vocabulary_and_steps(shared_data):
    published = Tolstoi(50, data_dir=shared_data, protocol="1.1")
    assert len(published.vocabulary) == Tolstoi.vocab_size == 83
    assert published.streams["train"].numel() == 2_612_948
    assert published.streams["test"].numel() == 653_237
    assert published.num_batches("train") == 1045
    assert published.num_batches("train_eval") == published.num_batches("test") == 261
    assert published.vocabulary[0] == " "
    data = Tolstoi(50, data_dir=shared_data)
    assert data.streams["valid"].numel() == 653_237 and data.streams["train"].numel() == 1_959_711
    assert data.num_batches("train") == 783
    inputs, targets = next(data.batches("valid"))
    text = "".join(data.vocabulary[i] for i in inputs[0, :13].tolist())
    assert text == "WAR AND PEACE"  # the validation stream starts where the cut text starts


def test_prepare_data_accepts_the_read_only_shared_folder(shared_data, capsys):
    assert prepare.main(["--data_dir", str(shared_data), "--only", "mnist", "fmnist", "tolstoi", "-q"]) == 0
    out = capsys.readouterr().out
    assert "tolstoi: ready" in out and "vocabulary 83" in out
