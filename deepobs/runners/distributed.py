"""Data-parallel runs with torchrun: one problem, K processes, the same experiment.

``torchrun --nproc_per_node K -m deepobs.run PROBLEM --optimizer NAME ...`` starts K
ranks. Each rank builds the same problem from the same seed, reads the same global
batch of every step (same order, same augmentation draws) and keeps only its shard of
``batch_size / K`` rows; DistributedDataParallel averages the gradients, so every step
is the step of one process on the whole batch. Evaluation passes are sharded the same
way and their sums are added across ranks. Only rank 0 writes files and logs.

Outside torchrun (no ``WORLD_SIZE`` > 1 in the environment) every function here is a
no-op, so single-process runs are unchanged. Limitations: BatchNorm layers are synced
(SyncBatchNorm) on GPUs only, so on CPU ranks normalise by their shard's statistics;
dropout masks are drawn per rank; a data-parallel run cannot resume from a checkpoint.
"""

from __future__ import annotations

import os
import warnings
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn

from deepobs.errors import ConfigurationError


def requested() -> bool:
    """True when started by torchrun (or by hand) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_distributed() -> bool:
    """True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank in the torch.distributed group (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes in the torch.distributed group (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0, or a plain single process: the one that writes files and logs."""
    return rank() == 0


def rank_device(device: str) -> str:
    """Join the process group (when torchrun started us) and return this rank's device.

    ``cuda`` becomes ``cuda:<LOCAL_RANK>`` (NCCL); a CPU run uses the gloo backend.
    Without torchrun, ``device`` is returned unchanged.
    """
    if not requested():
        return device
    on_gpu = str(device).startswith("cuda")
    if on_gpu and str(device) == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    if not dist.is_initialized():
        if on_gpu:
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(backend="nccl" if on_gpu else "gloo")
    return device


def join_single_process_group() -> bool:
    """Start a one-process gloo group when none exists (for optimizers that call
    torch.distributed in their step, e.g. DistributedMuon); True when one was started.
    With one process every collective is the identity, so the run is a plain run."""
    if not dist.is_available() or dist.is_initialized():
        return False
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    return True


class _DataParallelNet(nn.parallel.DistributedDataParallel):
    """DDP that gets out of the way where it is not needed: forward passes without
    gradients (evaluation) skip the collective calls, and attributes of the wrapped
    model (``net.encoder``) stay reachable."""

    def forward(self, *args, **kwargs):
        if not torch.is_grad_enabled():
            return self.module(*args, **kwargs)
        return super().forward(*args, **kwargs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def shard_of(tensor: torch.Tensor, index: int, count: int) -> torch.Tensor:
    """Rows ``index`` of ``count`` near-equal contiguous parts (empty parts allowed)."""
    return torch.tensor_split(tensor, count)[index]


def prepare(tproblem, random_seed: int, resuming: bool = False):
    """Make a set-up problem data-parallel: shard its batches, wrap its net in DDP,
    add evaluation sums across ranks. Returns the problem (unchanged outside torchrun).

    Raises:
        ConfigurationError: the batch size is not a multiple of the number of ranks,
            the problem evaluates in its own way, or a checkpoint is to be resumed.
    """
    if not is_distributed():
        return tproblem
    from deepobs.testproblems.base import TestProblem

    count, index = world_size(), rank()
    if tproblem.batch_size % count:
        raise ConfigurationError(
            f"batch_size {tproblem.batch_size} must be a multiple of the {count} processes, so that "
            "every rank gets an equal shard of each batch")
    if type(tproblem).evaluate is not TestProblem.evaluate:
        raise ConfigurationError(f"{tproblem.name} evaluates in its own way and cannot run data-parallel")
    if resuming:
        raise ConfigurationError("a data-parallel run cannot resume from a checkpoint; "
                                 "start it again with --overwrite")
    net = tproblem.net
    if tproblem.device.type == "cuda":
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    elif any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        warnings.warn(f"{tproblem.name} has BatchNorm: on CPU each rank normalises by its own shard, "
                      "so the run differs from a single-process one", stacklevel=2)
    device_ids = [tproblem.device.index] if tproblem.device.type == "cuda" else None
    tproblem.net = _DataParallelNet(net, device_ids=device_ids)
    # Dropout and other random layers draw independent masks on every rank.
    if index:
        torch.manual_seed((random_seed * 1_000_003 + index) % (2 ** 63))

    next_batch, eval_batches = tproblem._get_next_batch, tproblem._eval_batches

    def next_shard():
        inputs, targets = next_batch()
        return shard_of(inputs, index, count), shard_of(targets, index, count)

    def eval_shards(phase):
        for inputs, targets in eval_batches(phase):
            yield shard_of(inputs, index, count), shard_of(targets, index, count)

    tproblem._get_next_batch = next_shard
    tproblem._eval_batches = eval_shards
    tproblem._reduce_eval_sums = sum_across_ranks
    return tproblem


def sum_across_ranks(loss_sum: torch.Tensor, correct_sum: torch.Tensor, count: int):
    """The evaluation sums of all ranks (float64, so the totals are exact enough)."""
    totals = torch.stack([loss_sum.to(torch.float64), correct_sum.to(torch.float64),
                          torch.tensor(float(count), dtype=torch.float64, device=loss_sum.device)])
    dist.all_reduce(totals)
    return totals[0], totals[1], int(totals[2].item())


def mean_across_ranks(loss: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """The mean of a per-rank batch loss over all ranks (the loss of the global batch,
    since the shards are equal); unchanged outside torchrun."""
    if loss is None or not is_distributed():
        return loss
    total = loss.detach().clone()
    dist.all_reduce(total)  # gloo has no AVG
    return total / world_size()
