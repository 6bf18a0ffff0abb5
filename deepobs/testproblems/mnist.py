"""Problems on MNIST: logistic regression, MLP, 2c2d and the VAE."""

from __future__ import annotations

from deepobs.datasets.mnist import MNIST
from deepobs.models.basic import MLP, LogisticRegression
from deepobs.models.conv import TwoC2D
from deepobs.registry import register_problem
from deepobs.testproblems.bases import ClassificationProblem, VAEProblem


@register_problem("mnist_logreg")
class MNISTLogReg(ClassificationProblem):
    """Multinomial logistic regression on MNIST; weights and biases start at 0, no L2.

    Defaults (DeepOBS config): batch size 128, 50 epochs. 7,850 parameters.
    """

    dataset_class = MNIST
    dataset_name = "MNIST"
    model_name = "logistic regression"
    default_batch_size = 128
    default_num_epochs = 50

    def _build_net(self):
        return LogisticRegression(28 * 28, self.num_classes)


@register_problem("mnist_mlp")
class MNISTMLP(ClassificationProblem):
    """A 784-1000-500-100-10 ReLU MLP on MNIST; truncated N(0, 0.03²) weights, no L2.

    Defaults (DeepOBS config): batch size 128, 100 epochs. 1,336,610 parameters.
    """

    dataset_class = MNIST
    dataset_name = "MNIST"
    model_name = "MLP 1000-500-100"
    default_batch_size = 128
    default_num_epochs = 100

    def _build_net(self):
        return MLP(28 * 28, self.num_classes)


@register_problem("mnist_2c2d")
class MNIST2c2d(ClassificationProblem):
    """Two conv layers (32, 64 channels, 5×5, max-pool) and two dense layers (1024, 10).

    Truncated N(0, 0.05²) weights, all biases 0.05, no L2, no dropout.
    Defaults (DeepOBS config): batch size 128, 100 epochs. 3,274,634 parameters.
    """

    dataset_class = MNIST
    dataset_name = "MNIST"
    model_name = "2c2d"
    default_batch_size = 128
    default_num_epochs = 100

    def _build_net(self):
        return TwoC2D(1, self.num_classes, 28)


@register_problem("mnist_vae")
class MNISTVAE(VAEProblem):
    """P2: the DeepOBS VAE on MNIST (loss only).

    Defaults (DeepOBS config / baselines): batch size 64, 50 epochs. 10,151,489
    parameters. Published epoch-0 test loss 181.4 (protocol 1.1).
    """

    dataset_class = MNIST
    dataset_name = "MNIST"
    default_batch_size = 64
    default_num_epochs = 50


__all__ = ["MNIST2c2d", "MNISTLogReg", "MNISTMLP", "MNISTVAE"]
