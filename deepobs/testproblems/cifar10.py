"""Problems on CIFAR-10: 3c3d, VGG16, VGG19 and ResNet-18."""

from __future__ import annotations

from deepobs.datasets.cifar import CIFAR10
from deepobs.registry import register_problem
from deepobs.testproblems.bases import ResNet18Problem, ThreeC3DProblem, VGGProblem


class _CIFAR10Problem:
    dataset_class = CIFAR10
    dataset_name = "CIFAR-10"
    num_classes = 10


@register_problem("cifar10_3c3d")
class CIFAR10_3c3d(_CIFAR10Problem, ThreeC3DProblem):
    """P4: 3c3d on CIFAR-10, L2 0.002 on all weights.

    Defaults (DeepOBS config): batch size 128, 100 epochs. 895,210 parameters.
    """

    default_batch_size = 128
    default_num_epochs = 100


@register_problem("cifar10_vgg16")
class CIFAR10_VGG16(_CIFAR10Problem, VGGProblem):
    """VGG16 on CIFAR-10 resized to 224×224, L2 5e-4 on the conv kernels.

    DeepOBS publishes no batch size or epochs for it; ours: 128 and 100.
    134,301,514 parameters.
    """

    depth = 16
    model_name = "VGG16 (inputs resized to 224)"
    default_batch_size = 128
    default_num_epochs = 100


@register_problem("cifar10_vgg19")
class CIFAR10_VGG19(_CIFAR10Problem, VGGProblem):
    """VGG19 on CIFAR-10 resized to 224×224, L2 5e-4 on the conv kernels.

    DeepOBS publishes no batch size or epochs for it; ours: 128 and 100.
    139,611,210 parameters.
    """

    depth = 19
    model_name = "VGG19 (inputs resized to 224)"
    default_batch_size = 128
    default_num_epochs = 100


@register_problem("cifar10_resnet18")
class CIFAR10_ResNet18(_CIFAR10Problem, ResNet18Problem):
    """ResNet-18 (CIFAR variant) on CIFAR-10 with its recipe: pad-4 crop, flip,
    per-channel normalisation, Cutout 16×16; cross-entropy with label smoothing 0.1,
    L2 5e-4 on conv and linear weights. 11,173,962 parameters.

    Defaults: batch size 128, 100 epochs. Reference setting: SGD momentum 0.9,
    lr 0.1, 5 warm-up epochs then cosine decay; recipe target about 94 % top-1.
    """

    dataset_name = "CIFAR-10 (recipe pipeline: pad 4, flip, Cutout 16, per-channel normalisation)"
    target_test_accuracy = 0.94


__all__ = ["CIFAR10_3c3d", "CIFAR10_ResNet18", "CIFAR10_VGG16", "CIFAR10_VGG19"]
