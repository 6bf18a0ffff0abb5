"""Problems on CIFAR-100: 3c3d, All-CNN-C, VGG16/19, WRN-16-4, WRN-40-4 and ResNet-18."""

from __future__ import annotations

from torch import nn

from deepobs.datasets.cifar import CIFAR100
from deepobs.models.conv import AllCNNC
from deepobs.registry import register_problem
from deepobs.testproblems.bases import (ClassificationProblem, ResNet18Problem, ThreeC3DProblem, VGGProblem,
                                        WideResNetProblem)


class _CIFAR100Problem:
    dataset_class = CIFAR100
    dataset_name = "CIFAR-100"
    num_classes = 100


@register_problem("cifar100_3c3d")
class CIFAR100_3c3d(_CIFAR100Problem, ThreeC3DProblem):
    """3c3d on CIFAR-100, L2 0.002 on all weights. 918,340 parameters.

    DeepOBS publishes no batch size or epochs for it; ours: those of cifar10_3c3d,
    128 and 100.
    """

    default_batch_size = 128
    default_num_epochs = 100


@register_problem("cifar100_allcnnc")
class CIFAR100_AllCNNC(_CIFAR100Problem, ClassificationProblem):
    """P6: All-CNN-C on CIFAR-100; L2 5e-4 on the conv weights (biases 0.1, not
    regularised). 1,387,108 parameters.

    Defaults (DeepOBS config): batch size 256, 350 epochs. Reference training
    (Springenberg et al.): Momentum 0.9, lr 0.05, ÷10 after epochs 200, 250, 300.
    """

    model_name = "All-CNN-C"
    regularized_layers = (nn.Conv2d,)
    default_weight_decay = 5e-4
    default_batch_size = 256
    default_num_epochs = 350

    def _build_net(self):
        return AllCNNC(3, self.num_classes)


@register_problem("cifar100_vgg16")
class CIFAR100_VGG16(_CIFAR100Problem, VGGProblem):
    """VGG16 on CIFAR-100 resized to 224×224, L2 5e-4 on the conv kernels.

    DeepOBS publishes no batch size or epochs for it; ours: 128 and 100.
    134,670,244 parameters.
    """

    depth = 16
    model_name = "VGG16 (inputs resized to 224)"
    default_batch_size = 128
    default_num_epochs = 100


@register_problem("cifar100_vgg19")
class CIFAR100_VGG19(_CIFAR100Problem, VGGProblem):
    """VGG19 on CIFAR-100 resized to 224×224, L2 5e-4 on the conv kernels.

    DeepOBS publishes no batch size or epochs for it; ours: 128 and 100.
    139,979,940 parameters.
    """

    depth = 19
    model_name = "VGG19 (inputs resized to 224)"
    default_batch_size = 128
    default_num_epochs = 100


@register_problem("cifar100_wrn164")
class CIFAR100_WRN164(_CIFAR100Problem, WideResNetProblem):
    """WRN-16-4 on CIFAR-100 (DeepOBS's later PyTorch problem), L2 5e-4.

    Defaults (DeepOBS's later config): batch size 128, 160 epochs.
    """

    depth, widening_factor = 16, 4
    model_name = "WRN-16-4"
    default_batch_size = 128
    default_num_epochs = 160


@register_problem("cifar100_wrn404")
class CIFAR100_WRN404(_CIFAR100Problem, WideResNetProblem):
    """WRN-40-4 on CIFAR-100, L2 5e-4. 8,972,340 parameters.

    Defaults (DeepOBS's later config): batch size 128, 160 epochs. Reference
    training: Momentum 0.9, lr 0.1, ×0.2 after epochs 60, 120, 160 (200 epochs).
    """

    depth, widening_factor = 40, 4
    model_name = "WRN-40-4"
    default_batch_size = 128
    default_num_epochs = 160


@register_problem("cifar100_resnet18")
class CIFAR100_ResNet18(_CIFAR100Problem, ResNet18Problem):
    """ResNet-18 (CIFAR variant) on CIFAR-100 with its recipe: pad-4 crop, flip,
    per-channel normalisation, Cutout 8×8; cross-entropy with label smoothing 0.1,
    L2 5e-4 on conv and linear weights. 11,220,132 parameters.

    Defaults: batch size 128, 100 epochs. Reference setting: SGD momentum 0.9,
    lr 0.1, 5 warm-up epochs then cosine decay; recipe target 73 % top-1.
    """

    dataset_name = "CIFAR-100 (recipe pipeline: pad 4, flip, Cutout 8, per-channel normalisation)"
    target_test_accuracy = 0.73


__all__ = ["CIFAR100_3c3d", "CIFAR100_AllCNNC", "CIFAR100_ResNet18", "CIFAR100_VGG16", "CIFAR100_VGG19",
           "CIFAR100_WRN164", "CIFAR100_WRN404"]
