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
