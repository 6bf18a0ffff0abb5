"""The DataSet base class: splits, drop-last batching, orders per protocol, eval batching."""

import pytest
import torch

from deepobs.datasets import base
from deepobs.datasets.base import SPLIT_SEED, DataSet, Split, carve_validation
from deepobs.datasets.quadratic import Quadratic


def order(data, split="train"):
    return torch.cat([inputs[:, 0] for inputs, _ in data.batches(split)])


def test_protocol_11_repeats_the_training_order_and_12_reshuffles():
    published = Quadratic(128, protocol="1.1", random_seed=3)
    assert torch.equal(order(published), order(published))
    # Train-eval is the first batches of that same order.
    assert torch.equal(order(published, "train_eval"), order(published)[: 7 * 128])
    default = Quadratic(128, random_seed=3)
    assert not torch.equal(order(default), order(default))
    assert not torch.equal(order(Quadratic(128, protocol="1.1", random_seed=4)), order(published))


def test_same_seed_same_stream():
    assert torch.equal(order(Quadratic(64, random_seed=9)), order(Quadratic(64, random_seed=9)))


def test_drop_last_and_eval_batches_cover_the_same_examples():
    data = Quadratic(128, eval_batch_size=1000)
    assert data.num_batches("test") == 7
    small = torch.cat([x for x, _ in data.batches("test")])
    large = [x for x, _ in data.eval_batches("test")]
    assert len(large) == 1 and torch.equal(large[0], small) and small.shape[0] == 896


def test_carved_validation_is_disjoint_and_independent_of_the_run_seed():
    train = Split(torch.arange(100).float().unsqueeze(1), torch.arange(100))
    rest, valid = carve_validation(train, 20)
    again_rest, again_valid = carve_validation(train, 20)
    assert torch.equal(valid.targets, again_valid.targets) and torch.equal(rest.targets, again_rest.targets)
    assert len(valid) == 20 and len(rest) == 80
    assert not set(valid.targets.tolist()) & set(rest.targets.tolist())
    assert isinstance(SPLIT_SEED, int)


def test_fake_data_of_the_real_shape():
    class Images(DataSet):
        input_shape = (1, 4, 4)
        input_dtype = torch.uint8
        num_classes = 3

    data = Images(2, fake_data=20)
    assert data.splits["train"].inputs.dtype == torch.uint8
    assert len(data.splits["train"]) == 16 and len(data.splits["valid"]) == 4
    assert data.splits["train"].targets.max() < 3


@pytest.mark.parametrize("chunk_bytes", [1, 128 * 100 * 4 * 3, 1 << 30])
def test_shuffled_batches_do_not_depend_on_the_gather_chunk(monkeypatch, chunk_bytes):
    reference = [(x.clone(), y.clone()) for x, y in Quadratic(128, random_seed=5).batches("train")]
    monkeypatch.setattr(base, "GATHER_CHUNK_BYTES", chunk_bytes)
    batches = list(Quadratic(128, random_seed=5).batches("train"))
    assert len(batches) == len(reference) == 7
    for (x, y), (x_ref, y_ref) in zip(batches, reference):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref) and x.shape[0] == 128


# ------------------------------------------------------- protocol 1.1: the TF order
def test_buffer_shuffle_is_a_windowed_uniform_draw():
    order = base.buffer_shuffle(1000, 50, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(1000))
    # TF emits only what it has read: at step k the buffer holds inputs < 50 + k.
    assert bool((order < torch.arange(1000) + 50).all())
    assert not torch.equal(order, torch.arange(1000))
    # A buffer as large as the input: a uniform permutation (all 24 of 4 elements).
    generator = torch.Generator().manual_seed(1)
    counts = {}
    for _ in range(2400):
        key = tuple(base.buffer_shuffle(4, 20_000, generator).tolist())
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 24 and all(60 <= count <= 140 for count in counts.values())


def test_file_blocks_have_the_files_sizes_or_their_proportions():
    assert [len(b) for b in base.file_blocks(73_257, (12_800,) * 5 + (9_257,))] == [12_800] * 5 + [9_257]
    blocks = base.file_blocks(50, (10_000,) * 5)
    assert [b.tolist() for b in blocks] == [list(range(k, k + 10)) for k in range(0, 50, 10)]


class FiveFiles(DataSet):
    """50 examples in five 'files' of 10 and a 3-element shuffle buffer, so that the
    file order can be read back from a pass."""

    input_shape = (1,)
    valid_size = 10
    train_eval_size = 50
    tf_train_file_sizes = (10,) * 5
    tf_shuffle_buffer = 3

    def _load_raw(self):
        examples = torch.arange(50).float().unsqueeze(1)
        return {"train": Split(examples, torch.arange(50)), "test": Split(examples[:10], torch.arange(10))}


def _file_order(data, order):
    """The file order of one pass: undo the fixed buffer permutation, read the blocks."""
    stream = torch.empty_like(order)
    stream[data._buffer_order] = order
    files = (stream // 10).view(5, 10)
    assert bool((files == files[:, :1]).all()) and torch.equal(stream % 10, torch.arange(50) % 10)
    return tuple(files[:, 0].tolist())


def test_protocol_11_draws_a_new_file_order_every_pass_through_one_fixed_buffer_shuffle():
    data = FiveFiles(5, protocol="1.1", random_seed=3)
    passes = [torch.cat([targets for _, targets in data.batches(split)])
              for split in ("train_eval", "train") * 4]
    # Every pass, train-eval included (it is the first batches of its own pass), is a
    # file order through the same buffer permutation; the file order changes each pass.
    files = [_file_order(data, order) for order in passes]
    assert len(set(files)) >= 4
    # Same seed, same sequence of orders; another seed, another sequence.
    again = FiveFiles(5, protocol="1.1", random_seed=3)
    assert all(torch.equal(torch.cat([t for _, t in again.batches(split)]), order)
               for split, order in zip(("train_eval", "train") * 4, passes))
    other = FiveFiles(5, protocol="1.1", random_seed=4)
    assert not torch.equal(torch.cat([t for _, t in other.batches("train")]), passes[1])


def test_protocol_11_with_one_file_repeats_the_order_and_12_reshuffles():
    class OneFile(FiveFiles):
        tf_train_file_sizes = (50,)
        tf_shuffle_buffer = 20

    data = OneFile(5, protocol="1.1", random_seed=3)
    first, second = (torch.cat([t for _, t in data.batches("train")]) for _ in range(2))
    assert torch.equal(first, second) and torch.equal(first, data._buffer_order)
    assert torch.equal(torch.cat([t for _, t in data.batches("train_eval")]), first[:data.train_eval_size])
    default = OneFile(5, random_seed=3)
    assert not torch.equal(torch.cat([t for _, t in default.batches("train")]),
                           torch.cat([t for _, t in default.batches("train")]))


def test_the_published_order_of_each_image_data_set():
    from deepobs.datasets import CIFAR10, CIFAR100, MNIST, SVHN

    assert CIFAR10.tf_train_file_sizes == (10_000,) * 5 and CIFAR10.tf_shuffle_buffer == 20_000
    assert CIFAR100.tf_train_file_sizes == (50_000,) and CIFAR100.tf_shuffle_buffer == 20_000
    assert sum(SVHN.tf_train_file_sizes) == 73_257 and SVHN.tf_shuffle_buffer == 20_000
    assert MNIST.tf_train_file_sizes == () and MNIST.tf_shuffle_buffer == 20_000
