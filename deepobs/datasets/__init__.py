"""Data sets: raw files (or generated data) held in memory as tensors, split and batched."""

from deepobs.datasets.base import DataSet, Split, carve_validation
from deepobs.datasets.cifar import CIFAR10, CIFAR100
from deepobs.datasets.imagenet import ImageNet
from deepobs.datasets.mnist import MNIST, FashionMNIST
from deepobs.datasets.quadratic import Quadratic
from deepobs.datasets.svhn import SVHN
from deepobs.datasets.tolstoi import Tolstoi
from deepobs.datasets.two_d import TwoD

__all__ = [
    "DataSet", "Split", "carve_validation", "Quadratic", "TwoD", "MNIST", "FashionMNIST",
    "CIFAR10", "CIFAR100", "SVHN", "ImageNet", "Tolstoi",
]
