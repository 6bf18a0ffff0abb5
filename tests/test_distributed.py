"""Data-parallel runs: 2 CPU ranks (gloo) give the losses of one process on the same batch."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepobs.runners import distributed
from deepobs.runners.optimizers import resolve_optimizer
from deepobs.runners.runner import StandardRunner

REPO = Path(__file__).resolve().parents[1]
#: mnist_logreg on fake data of MNIST's shape: 2 epochs of 6 steps at batch size 128.
RUN = dict(testproblem="mnist_logreg", hyperparams={"lr": 0.1}, num_epochs=2, fake_data=1024,
           device="cpu", quiet=True, random_seed=42)
CURVES = ("train_losses", "valid_losses", "test_losses", "train_accuracies", "valid_accuracies",
          "test_accuracies", "minibatch_train_losses")


def _runner() -> StandardRunner:
    spec = resolve_optimizer("sgd")
    return StandardRunner(spec.build, spec.hyperparameters, optimizer_name=spec.name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, port: int, output_dir: str, results) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        output = _runner().run(output_dir=output_dir, **RUN)
        results.put((rank, {key: output[key] for key in CURVES}))
    except BaseException as error:  # report, do not hang the test
        results.put((rank, repr(error)))
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _result_file(folder: Path) -> dict:
    (path,) = folder.rglob("random_seed__42__*.json")
    return json.loads(path.read_text())


def _assert_same_curves(single: dict, parallel: dict) -> None:
    for key in CURVES:
        assert len(single[key]) == len(parallel[key]), key
        assert parallel[key] == pytest.approx(single[key], rel=1e-5, abs=1e-6), key


def test_outside_torchrun_everything_is_a_no_op(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.requested() and not distributed.is_distributed()
    assert distributed.rank_device("cpu") == "cpu" and distributed.is_main_process()
    loss = torch.tensor(1.5)
    assert distributed.mean_across_ranks(loss) is loss
    problem = object()
    assert distributed.prepare(problem, 42) is problem


def test_shards_split_every_batch_into_equal_contiguous_parts():
    batch = torch.arange(12)
    shards = [distributed.shard_of(batch, i, 4) for i in range(4)]
    assert [s.tolist() for s in shards] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    assert [len(distributed.shard_of(torch.arange(3), i, 4)) for i in range(4)] == [1, 1, 1, 0]


def test_two_gloo_ranks_give_the_losses_of_one_process(tmp_path):
    torch.set_num_threads(1)
    single = _runner().run(output_dir=str(tmp_path / "one"), **RUN)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    port = _free_port()
    ranks = [context.Process(target=_rank_main, args=(rank, port, str(tmp_path / "two"), results))
             for rank in range(2)]
    for process in ranks:
        process.start()
    received = dict(results.get(timeout=300) for _ in ranks)
    for process in ranks:
        process.join(timeout=60)
    assert all(isinstance(value, dict) for value in received.values()), received
    _assert_same_curves(single, received[0])
    _assert_same_curves(single, received[1])  # every rank saw the same global numbers
    # one file, written by rank 0, equal to the single-process file
    assert len(list((tmp_path / "two").rglob("*.json"))) == 1
    _assert_same_curves(_result_file(tmp_path / "one"), _result_file(tmp_path / "two"))


@pytest.mark.slow
def test_torchrun_two_cpu_processes_match_one_process(tmp_path):
    flags = ["mnist_logreg", "--optimizer", "sgd", "--lr", "0.1", "-N", "2", "--fake_data", "1024",
             "--device", "cpu", "-q"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-m", "deepobs.run", *flags, "--output_dir", str(tmp_path / "one")],
                   check=True, cwd=REPO, env=env)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "-m", "deepobs.run", *flags, "--output_dir", str(tmp_path / "two")],
                   check=True, cwd=REPO, env=env)
    _assert_same_curves(_result_file(tmp_path / "one"), _result_file(tmp_path / "two"))
