"""MNIST, Fashion-MNIST, CIFAR-10/100 and SVHN loaders on tiny files in the real formats."""

import gzip
import shutil

import numpy as np
import pytest
import torch

from datafiles import write_cifar10, write_cifar100, write_mnist, write_svhn
from deepobs.datasets import CIFAR10, CIFAR100, MNIST, SVHN, FashionMNIST
from deepobs.datasets.base import buffer_shuffle
from deepobs.datasets.cifar import read_cifar_binary
from deepobs.errors import DataError


class TinyMNIST(MNIST):
    valid_size = 12
    train_eval_size = 16


class TinyFashionMNIST(FashionMNIST):
    valid_size = 12


class TinyCIFAR10(CIFAR10):
    valid_size = 10


class TinyCIFAR100(CIFAR100):
    valid_size = 10


class TinySVHN(SVHN):
    valid_size = 8
    train_eval_size = 8


def test_mnist_reads_idx_gz_shapes_dtypes_labels(tmp_path):
    written = write_mnist(tmp_path, train=60, test=20)
    data = TinyMNIST(4, data_dir=tmp_path, verify=False, protocol="1.1")
    train = data.splits["train"]
    assert train.inputs.dtype == torch.uint8 and train.inputs.shape == (60, 1, 28, 28)
    assert torch.equal(train.inputs[:, 0], torch.from_numpy(written["train"][0]))
    assert torch.equal(train.targets, torch.from_numpy(written["train"][1].astype(np.int64)))
    inputs, targets = next(data.batches("test"))
    assert inputs.dtype == torch.float32 and inputs.shape == (4, 1, 28, 28)
    assert targets.dtype == torch.int64
    assert torch.equal(inputs, torch.from_numpy(written["t10k"][0][:4]).float().unsqueeze(1) / 255)
    assert data.num_batches("test") == 5 and data.num_batches("train_eval") == 4


def test_mnist_validation_split_is_deterministic_disjoint_and_complete(tmp_path):
    write_mnist(tmp_path, train=60, test=20)
    first = TinyMNIST(4, data_dir=tmp_path, verify=False, random_seed=1)
    second = TinyMNIST(4, data_dir=tmp_path, verify=False, random_seed=2)
    assert len(first.splits["valid"]) == 12 and len(first.splits["train"]) == 48
    assert torch.equal(first.splits["valid"].inputs, second.splits["valid"].inputs)

    def keys(images):
        return {image.numpy().tobytes() for image in images}

    train, valid = keys(first.splits["train"].inputs), keys(first.splits["valid"].inputs)
    assert not train & valid and len(train | valid) == 60
    # train_eval draws from the training split only, never from validation.
    for inputs, _ in first.batches("train_eval"):
        assert keys((inputs * 255).round().to(torch.uint8)) <= train


def test_fashion_mnist_and_torchvision_layout(tmp_path):
    write_mnist(tmp_path, folder="fmnist", train=30, test=10, seed=3)
    data = TinyFashionMNIST(5, data_dir=tmp_path, verify=False)
    assert len(data.splits["train"]) == 18 and len(data.splits["test"]) == 10
    raw = tmp_path / "tv"
    written = write_mnist(raw, folder="MNIST/raw", train=30, test=10, gz=False)
    data = TinyMNIST(5, data_dir=raw, verify=False, protocol="1.1")
    assert torch.equal(data.splits["test"].inputs[:, 0], torch.from_numpy(written["t10k"][0]))


def test_missing_truncated_and_unverified_files_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing data file .*mnist.*deepobs-prepare-data .*--only mnist"):
        MNIST(4, data_dir=tmp_path)
    write_mnist(tmp_path)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    # A tiny file under an official name fails the official checksum.
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz.*official"):
        MNIST(4, data_dir=tmp_path)
    # Truncation is caught by the format itself, even without checksums.
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(DataError, match=r"truncated data file .*train-images-idx3-ubyte\.gz"):
        TinyMNIST(4, data_dir=tmp_path, verify=False)
    # An idx file whose data is shorter than its header says.
    with gzip.open(path, "wb") as stream:
        stream.write(bytes([0, 0, 8, 3]) + (100).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 10)
    with pytest.raises(DataError, match="header"):
        TinyMNIST(4, data_dir=tmp_path, verify=False)


def test_cifar10_pickles_shapes_order_and_augmentation_switch(tmp_path):
    written = write_cifar10(tmp_path, per_batch=10, test=10)
    data = TinyCIFAR10(5, data_dir=tmp_path, verify=False, protocol="1.1")
    train = data.splits["train"]
    assert train.inputs.shape == (50, 3, 32, 32) and train.inputs.dtype == torch.uint8
    # Channel-major planes, no byte shift: the stored image equals the written one.
    assert torch.equal(train.inputs, torch.from_numpy(written["train_images"]))
    assert torch.equal(train.targets, torch.from_numpy(written["train_labels"]))
    inputs, targets = next(data.batches("train"))
    assert inputs.shape == (5, 3, 32, 32) and inputs.dtype == torch.float32
    assert torch.allclose(inputs.flatten(1).mean(1), torch.zeros(5), atol=1e-5)
    assert torch.allclose(inputs.flatten(1).std(1, unbiased=False), torch.ones(5), atol=1e-4)
    plain = TinyCIFAR10(5, data_dir=tmp_path, verify=False, protocol="1.1", data_augmentation=False)
    # Protocol 1.1 order (DeepOBS's TF pipeline): the five files in an order drawn from the
    # order stream, then the run's fixed shuffle-buffer permutation (buffer >= 50: uniform).
    files = torch.randperm(5, generator=torch.Generator().manual_seed(42 * 10 + 1))
    stream = torch.cat([torch.arange(10 * k, 10 * k + 10) for k in files.tolist()])
    index = stream[buffer_shuffle(50, 50, torch.Generator().manual_seed(42 * 10 + 4))][:5]
    expected = plain.transform_batch(plain.splits["train"].inputs[index], train=False)
    assert torch.allclose(next(plain.batches("train"))[0], expected)
    with_valid = TinyCIFAR10(5, data_dir=tmp_path, verify=False)
    assert len(with_valid.splits["train"]) == 40 and len(with_valid.splits["valid"]) == 10


def test_cifar10_binary_and_torchvision_layouts(tmp_path):
    written = write_cifar10(tmp_path / "tv", folder="cifar-10-batches-py", per_batch=4, test=4)
    data = TinyCIFAR10(2, data_dir=tmp_path / "tv", verify=False, protocol="1.1")
    assert torch.equal(data.splits["test"].inputs, torch.from_numpy(written["test_images"]))
    folder = tmp_path / "bin" / "cifar-10"
    folder.mkdir(parents=True)
    records = np.concatenate([written["test_labels"].astype(np.uint8)[:, None],
                              written["test_images"].reshape(4, -1)], axis=1)
    for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        records.tofile(folder / name)
    data = TinyCIFAR10(2, data_dir=tmp_path / "bin", protocol="1.1")
    assert torch.equal(data.splits["test"].inputs, torch.from_numpy(written["test_images"]))
    assert len(data.splits["train"]) == 20
    (folder / "test_batch.bin").write_bytes(records.tobytes()[:-5])
    with pytest.raises(DataError, match="truncated data file .*test_batch.bin"):
        read_cifar_binary(folder / "test_batch.bin", 1)


def test_cifar100_uses_fine_labels_and_detects_a_corrupt_pickle(tmp_path):
    written = write_cifar100(tmp_path, train=50, test=10)
    data = TinyCIFAR100(5, data_dir=tmp_path, verify=False)
    assert data.num_classes == 100
    assert torch.equal(data.splits["test"].targets, torch.from_numpy(written["test"][1]))
    assert int(data.splits["train"].targets.min()) >= 20  # fine, not coarse (0..19)
    assert len(data.splits["train"]) == 40 and len(data.splits["valid"]) == 10
    path = tmp_path / "cifar-100" / "test"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"truncated data file .*cifar-100.test"):
        TinyCIFAR100(5, data_dir=tmp_path, verify=False)
    with pytest.raises(DataError, match="official"):
        TinyCIFAR100(5, data_dir=tmp_path)  # checksums on: the tiny file is not the official one


def test_svhn_mat_label_mapping_layout_and_sizes(tmp_path):
    written = write_svhn(tmp_path, train=40, test=20)
    data = TinySVHN(4, data_dir=tmp_path, verify=False)
    assert len(data.splits["train"]) == 32 and len(data.splits["valid"]) == 8
    test = data.splits["test"]
    images, labels = written["test"]
    assert torch.equal(test.inputs, torch.from_numpy(images.transpose(3, 2, 0, 1).copy()))
    expected = labels.ravel().astype(np.int64) % 10  # 10 -> 0
    assert torch.equal(test.targets, torch.from_numpy(expected))
    assert set(test.targets.tolist()) == set(range(10))
    assert data.random_flip is False and data.num_batches("train_eval") == 2
    # torchvision's layout: the .mat files directly in the data dir.
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("train_32x32.mat", "test_32x32.mat"):
        shutil.copy(tmp_path / "svhn" / name, flat / name)
    assert len(TinySVHN(4, data_dir=flat, verify=False, protocol="1.1").splits["train"]) == 40
    (flat / "test_32x32.mat").write_bytes((flat / "test_32x32.mat").read_bytes()[:500])
    with pytest.raises(DataError, match="test_32x32.mat"):
        TinySVHN(4, data_dir=flat, verify=False)


def test_training_batches_are_reproducible_per_seed(tmp_path):
    write_cifar10(tmp_path, per_batch=10, test=10)

    def first_batch(seed):
        data = TinyCIFAR10(8, data_dir=tmp_path, verify=False, random_seed=seed)
        return [inputs for inputs, _ in data.batches("train")]

    same, again, other = first_batch(3), first_batch(3), first_batch(4)
    assert all(torch.equal(a, b) for a, b in zip(same, again))
    assert not torch.equal(same[0], other[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_are_built_on_the_run_device(tmp_path):
    write_cifar10(tmp_path, per_batch=10, test=10)
    data = TinyCIFAR10(8, data_dir=tmp_path, verify=False, device="cuda")
    inputs, targets = next(data.batches("train"))
    assert inputs.is_cuda and targets.is_cuda and inputs.dtype == torch.float32
    assert data.splits["train"].inputs.dtype == torch.uint8 and data.splits["train"].inputs.is_cuda
