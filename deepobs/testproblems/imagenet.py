"""Problems on ImageNet (1001 outputs: 1000 classes and DeepOBS's background class)."""

from __future__ import annotations

from torch import nn

from deepobs.datasets.imagenet import ImageNet
from deepobs.models.inception import InceptionV3
from deepobs.registry import register_problem
from deepobs.testproblems.bases import AuxiliaryHeadProblem, VGGProblem


class _ImageNetProblem:
    dataset_class = ImageNet
    dataset_name = "ImageNet"
    num_classes = 1001


@register_problem("imagenet_vgg16")
class ImageNet_VGG16(_ImageNetProblem, VGGProblem):
    """VGG16 on ImageNet (224×224 crops), L2 5e-4 on the conv kernels. 138,361,641 parameters.

    DeepOBS publishes no batch size or epochs for it; ours follow Simonyan &
    Zisserman's training: batch size 256, 74 epochs.
    """

    depth = 16
    model_name = "VGG16"
    default_batch_size = 256
    default_num_epochs = 74


@register_problem("imagenet_vgg19")
class ImageNet_VGG19(_ImageNetProblem, VGGProblem):
    """VGG19 on ImageNet (224×224 crops), L2 5e-4 on the conv kernels. 143,671,337 parameters.

    DeepOBS publishes no batch size or epochs for it; ours follow Simonyan &
    Zisserman's training: batch size 256, 74 epochs.
    """

    depth = 19
    model_name = "VGG19"
    default_batch_size = 256
    default_num_epochs = 74


@register_problem("imagenet_inception_v3")
class ImageNet_InceptionV3(_ImageNetProblem, AuxiliaryHeadProblem):
    """Inception-v3 on ImageNet crops resized to 299×299, with its auxiliary head.

    Loss: cross-entropy with label smoothing 0.1 on the main logits, plus 0.4 × the
    same on the auxiliary logits in training only; accuracy of the main logits.
    L2 5e-4 on the conv kernels (the dense layers carry none, as published). Batch
    norm momentum 0.0003 (TF 0.9997), ε 1e-3; dropout drops 80 % before the
    classifier, as DeepOBS's TF code (the paper's model drops 20 %; see the
    "Differences from DeepOBS" table). 27,164,082 parameters.

    DeepOBS publishes no batch size or epochs for it; ours follow the paper's
    training (also in DeepOBS's docstring): batch size 32, 100 epochs (RMSProp decay
    0.9, ε 1.0, lr 0.045 × 0.94 every two epochs, gradient clipping at 2.0).
    """

    model_name = "Inception-v3 (+ auxiliary head)"
    loss_name = "cross-entropy, label smoothing 0.1 (+ 0.4 × aux in training)"
    label_smoothing = 0.1
    regularized_layers = (nn.Conv2d,)
    default_weight_decay = 5e-4
    default_batch_size = 32
    default_num_epochs = 100

    def _build_net(self):
        return InceptionV3(self.num_classes)


__all__ = ["ImageNet_InceptionV3", "ImageNet_VGG16", "ImageNet_VGG19"]
