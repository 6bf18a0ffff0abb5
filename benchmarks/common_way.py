"""The common way to feed a DeepOBS problem, as the reference PyTorch port does it.

Dataset objects that return one example at a time (images go through PIL and
per-sample torchvision transforms, as torchvision's MNIST and CIFAR10 classes do),
a ``DataLoader`` (shuffled, drop-last, ``NUM_WORKERS=0`` as in the port's config),
train-eval through a ``SubsetRandomSampler`` over the training set, and evaluation
through the same loaders at the training batch size, averaging per-batch means.
The examples are the problem's own, so only the data path differs.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, SubsetRandomSampler, TensorDataset
from torchvision import transforms

#: Per-channel mean and std of CIFAR-10 (the port's ``Normalize`` constants).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class PerSampleImages(Dataset):
    """uint8 images served one at a time through PIL and ``transform`` (torchvision style)."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, transform):
        images = images.cpu()
        if images.dim() == 4 and images.shape[1] == 1:
            images = images[:, 0]                # (N, H, W): PIL mode "L"
        elif images.dim() == 4:
            images = images.permute(0, 2, 3, 1)  # (N, H, W, C): PIL mode "RGB"
        self.images = np.ascontiguousarray(images.numpy())
        self.targets = targets.cpu().tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index])
        return self.transform(image), self.targets[index]


class Cutout:
    """One square hole of side ``size`` (centre uniform, clipped at the borders) in a
    (C, H, W) tensor, per sample, as the Cutout paper's code does it."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        y, x = np.random.randint(height), np.random.randint(width)
        top, left = y - self.size // 2, x - self.size // 2
        image = image.clone()
        image[:, max(0, top):top + self.size, max(0, left):left + self.size] = 0
        return image


def image_transforms(problem) -> tuple:
    """(training, evaluation) per-sample transforms of the reference port (or, for the
    ResNet-18 recipe, the recipe's usual torchvision transforms)."""
    data = problem.data
    if getattr(data, "pipeline", None) == "recipe":
        normalize = transforms.Normalize(data.channel_mean, data.channel_std)
        train = transforms.Compose([
            transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
            transforms.ToTensor(), normalize, Cutout(data.cutout_size)])
        return train, transforms.Compose([transforms.ToTensor(), normalize])
    if problem.data.input_shape[0] == 3:  # CIFAR: the port's augmentation, then Normalize
        normalize = transforms.Normalize(CIFAR_MEAN, CIFAR_STD)
        train = transforms.Compose([
            transforms.Pad(2), transforms.RandomCrop(32), transforms.RandomHorizontalFlip(),
            transforms.ColorJitter(brightness=63 / 255, saturation=(0.5, 1.5), contrast=(0.2, 1.8)),
            transforms.ToTensor(), normalize])
        return train, transforms.Compose([transforms.ToTensor(), normalize])
    return transforms.ToTensor(), transforms.ToTensor()


def stream_sequences(split, seq: int) -> TensorDataset:
    """A stateful RNN's stream layout (batch rows × time) as one sequence per example,
    ordered so that consecutive drop-last batches are the stream's batches."""
    rows, length = split.inputs.shape

    def unroll(tensor):
        steps = length // seq
        return tensor[:, :steps * seq].reshape(rows, steps, seq).transpose(0, 1).reshape(-1, seq).long()

    return TensorDataset(unroll(split.inputs.cpu()), unroll(split.targets.cpu()))


class CommonLoaders:
    """The DataLoaders of one problem: train (shuffled), train_eval, valid and test."""

    def __init__(self, problem, batches: dict):
        data = problem.data
        self.batches = batches
        self.stateful = getattr(data, "stateful", False)
        batch_size = data.batch_size
        if self.stateful:
            sets = {split: stream_sequences(data.splits[split], data.seq_length) for split in data.splits}
            train_set, eval_set = sets["train"], sets["train"]
        elif data.input_dtype == torch.uint8:
            train_transform, eval_transform = image_transforms(problem)
            sets = {split: PerSampleImages(s.inputs, s.targets, eval_transform)
                    for split, s in data.splits.items()}
            train_set = PerSampleImages(data.splits["train"].inputs, data.splits["train"].targets,
                                        train_transform)
            eval_set = train_set
        else:
            sets = {split: TensorDataset(s.inputs.cpu(), s.targets.cpu()) for split, s in data.splits.items()}
            train_set = eval_set = sets["train"]
        self.loaders = {
            "train": DataLoader(train_set, batch_size=batch_size, shuffle=not self.stateful,
                                drop_last=True, num_workers=0),
            "train_eval": DataLoader(
                eval_set, batch_size=batch_size, drop_last=True, num_workers=0,
                sampler=None if self.stateful else SubsetRandomSampler(range(data.train_eval_size))),
        }
        for split in ("valid", "test"):
            if split in sets:
                self.loaders[split] = DataLoader(sets[split], batch_size=batch_size, shuffle=False,
                                                 drop_last=True, num_workers=0)

    def __call__(self, split: str):
        """The batches of one pass over ``split`` (cut to the workload's length)."""
        return itertools.islice(iter(self.loaders[split]), self.batches[split])
