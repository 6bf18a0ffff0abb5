"""Speed of the training input pipeline: whole-batch tensors vs per-sample DataLoader.

Compares, on CIFAR-sized images in the python pickle format (random pixels written to a
temporary folder), DeepOBS-style training batches (pad 2 + random crop, flip, brightness,
saturation, contrast, per-image standardisation, batch 128) built by
``deepobs.datasets.CIFAR10`` against the common per-sample approach (torchvision
dataset + transforms + DataLoader with 2 workers), and the ResNet-18 recipe's batches
(pad 4 + random crop, flip, per-channel normalisation, Cutout). Also times loading
MNIST from the idx gz files into memory.

    .venv/bin/python benchmarks/pipeline_speed.py [--images 10000] [--mnist DATA]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from datafiles import write_cifar10  # noqa: E402  (tiny-file writers of the test suite)

from deepobs.datasets import CIFAR10, MNIST  # noqa: E402

BATCH_SIZE = 128


def batched_pipeline(data_dir: Path, device: str, passes: int, pipeline: str = "deepobs") -> float:
    """Images per second of deepobs's training batches (all augmentation included)."""
    data = CIFAR10(BATCH_SIZE, data_dir=str(data_dir), verify=False, protocol="1.1", device=device,
                   pipeline=pipeline)
    for _ in data.batches("train"):  # warm-up pass
        break
    images = 0
    start = time.perf_counter()
    for _ in range(passes):
        for inputs, targets in data.batches("train"):
            images += inputs.shape[0]
    if device == "cuda":
        torch.cuda.synchronize()
    return images / (time.perf_counter() - start)


def per_sample_pipeline(data_dir: Path, batches: int, workers: int) -> float:
    """Images per second of torchvision CIFAR10 + per-sample transforms + DataLoader."""
    import torchvision
    from torchvision import transforms

    class LocalCIFAR10(torchvision.datasets.CIFAR10):
        base_folder = "cifar-10"

        # The benchmark's pixels are random, not the official files: skip the md5 checks.
        def _check_integrity(self):
            return True

        def _load_meta(self):
            self.classes = [f"class{k}" for k in range(10)]
            self.class_to_idx = {name: k for k, name in enumerate(self.classes)}

    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=2),
        transforms.RandomHorizontalFlip(),
        transforms.ColorJitter(brightness=63 / 255, saturation=(0.5, 1.5), contrast=(0.2, 1.8)),
        transforms.ToTensor(),
        transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    ])
    dataset = LocalCIFAR10(str(data_dir), train=True, transform=transform, download=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True,
                                         num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)
    iterator = iter(loader)
    for _ in range(3):  # warm-up: worker start-up is not counted
        next(iterator)
    images = 0
    start = time.perf_counter()
    for _ in range(batches):
        try:
            inputs, _ = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            inputs, _ = next(iterator)
        images += inputs.shape[0]
    return images / (time.perf_counter() - start)


def mnist_load_seconds(shared_data: Path) -> tuple[float, float]:
    """Seconds to build MNIST in memory from the gz files: first time (with the
    checksum check) and again (checksums remembered)."""
    with tempfile.TemporaryDirectory() as cache:
        os.environ["XDG_CACHE_HOME"] = cache
        start = time.perf_counter()
        MNIST(128, data_dir=str(shared_data), protocol="1.1")
        first = time.perf_counter() - start
        start = time.perf_counter()
        MNIST(128, data_dir=str(shared_data), protocol="1.1")
        return first, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000, help="training images written")
    parser.add_argument("--passes", type=int, default=3, help="passes of the batched pipeline")
    parser.add_argument("--batches", type=int, default=40, help="batches timed per-sample")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the main process (1: a DataLoader worker's setting; "
                             "more threads on a busy 2-core machine make small ops much slower)")
    parser.add_argument("--mnist", default=os.environ.get("DEEPOBS_DATA_DIR", "data_deepobs"),
                        help="folder with mnist/*.gz")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, device {args.device}")
    with tempfile.TemporaryDirectory() as folder:
        per_batch = args.images // 5
        write_cifar10(folder, per_batch=per_batch, test=1000)
        batched = batched_pipeline(Path(folder), args.device, args.passes)
        recipe = batched_pipeline(Path(folder), args.device, args.passes, pipeline="recipe")
        per_sample = per_sample_pipeline(Path(folder), args.batches, args.workers)
    print(f"CIFAR-10 training pipeline, batch {BATCH_SIZE}, {args.images} images:")
    print(f"  deepobs whole-batch (pad-crop-flip-distort-standardise): {batched:12,.0f} images/s")
    print(f"  torchvision per-sample + DataLoader({args.workers} workers): {per_sample:12,.0f} images/s")
    print(f"  ratio: {batched / per_sample:.1f}x")
    print(f"  deepobs whole-batch, ResNet-18 recipe (pad 4-crop-flip-normalise-Cutout): {recipe:12,.0f} images/s"
          f" ({recipe / batched:.2f}x the DeepOBS pipeline)")
    shared = Path(args.mnist)
    if (shared / "mnist").is_dir():
        first, again = mnist_load_seconds(shared)
        print(f"MNIST from {shared / 'mnist'} into memory: {first:.2f} s first time "
              f"(incl. sha256 check), {again:.2f} s after")
    else:
        print(f"MNIST load time skipped: {shared / 'mnist'} is absent")


if __name__ == "__main__":
    main()
