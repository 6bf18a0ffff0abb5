"""Problems on Fashion-MNIST: the MNIST architectures on Zalando's clothing images."""

from __future__ import annotations

from deepobs.datasets.mnist import FashionMNIST
from deepobs.registry import register_problem
from deepobs.testproblems.mnist import MNIST2c2d, MNISTLogReg, MNISTMLP, MNISTVAE


@register_problem("fmnist_logreg")
class FMNISTLogReg(MNISTLogReg):
    """Logistic regression on Fashion-MNIST (as ``mnist_logreg``).

    Defaults: batch size 128, 50 epochs (DeepOBS's later PyTorch config).
    """

    dataset_class = FashionMNIST
    dataset_name = "Fashion-MNIST"


@register_problem("fmnist_mlp")
class FMNISTMLP(MNISTMLP):
    """The 4-layer MLP on Fashion-MNIST (DeepOBS 1.1 trained it on MNIST by mistake;
    here it uses Fashion-MNIST). Defaults: batch size 128, 100 epochs."""

    dataset_class = FashionMNIST
    dataset_name = "Fashion-MNIST"


@register_problem("fmnist_2c2d")
class FMNIST2c2d(MNIST2c2d):
    """P3: 2c2d on Fashion-MNIST. Defaults: batch size 128, 100 epochs.

    Published (SGD, lr 0.158, protocol 1.1): test accuracy about 0.85 after one
    epoch, 92.3 % after 100.
    """

    dataset_class = FashionMNIST
    dataset_name = "Fashion-MNIST"


@register_problem("fmnist_vae")
class FMNISTVAE(MNISTVAE):
    """P5: the DeepOBS VAE on Fashion-MNIST (loss only). Defaults: batch size 64,
    100 epochs. Published epoch-0 test loss 133.0 (protocol 1.1)."""

    dataset_class = FashionMNIST
    dataset_name = "Fashion-MNIST"
    default_num_epochs = 100


__all__ = ["FMNIST2c2d", "FMNISTLogReg", "FMNISTMLP", "FMNISTVAE"]
