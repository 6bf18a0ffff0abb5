"""Shared kinds of problems: image classification with published L2 groups, and the VAE.

A concrete problem (in the module of its data set family) only names its data set,
model builder and defaults; the loss, metric and L2 plumbing live here once.
"""

from __future__ import annotations

from torch import nn
from torch.nn import functional as F

from deepobs.models.conv import ThreeC3D
from deepobs.models.resnet import resnet18
from deepobs.models.vae import VAE, vae_loss
from deepobs.models.vgg import VGG
from deepobs.models.wrn import wide_resnet
from deepobs.testproblems.base import TestProblem


class DataSetProblem(TestProblem):
    """A problem whose data is ``dataset_class(batch_size, **dataset_kwargs)``."""

    dataset_class = None

    def _build_data(self, **dataset_kwargs):
        return self.dataset_class(self._batch_size, **dataset_kwargs)


class ClassificationProblem(DataSetProblem):
    """Softmax cross-entropy on logits, accuracy of the arg-max, L2 on chosen weights.

    Attributes:
        num_classes: outputs of the model.
        label_smoothing: TF's ``label_smoothing`` (targets (1 − s)·onehot + s / classes).
        regularized_layers: layer types whose ``weight`` carries the L2 penalty, as
            published for the model (biases and batch-norm parameters never do).
    """

    num_classes: int = 10
    label_smoothing: float = 0.0
    regularized_layers: tuple = ()
    loss_name = "cross-entropy"

    def loss_function(self, outputs, targets):
        """Per-example cross-entropy (with the problem's label smoothing)."""
        return F.cross_entropy(outputs, targets, reduction="none", label_smoothing=self.label_smoothing)

    def get_regularization_groups(self) -> dict:
        """``{weight_decay: weights of the regularized layers}``, or {} without weight decay."""
        if self._weight_decay is None or not self.regularized_layers:
            return {}
        weights = [module.weight for module in self.net.modules()
                   if isinstance(module, self.regularized_layers)]
        return {self._weight_decay: weights}


class VAEProblem(DataSetProblem):
    """The DeepOBS VAE on 28×28 images in [0, 1]: loss only, no accuracy, no L2.

    Per-example loss = Σ_pixels (x̂ − x)² + KL divergence of the latent code; the
    batch loss is its mean. Labels are ignored.
    """

    has_accuracy = False
    batch_independent_eval = False  # evaluation draws latent noise: batching changes the draws
    model_name = "VAE (latent 8, log-std head)"
    loss_name = "squared error (sum over pixels) + KL"

    def _build_net(self) -> nn.Module:
        return VAE(latent_size=8)

    def _compute(self, inputs, targets):
        reconstruction, mean, log_std = self.net(inputs)
        return vae_loss(reconstruction, inputs, mean, log_std), None


class AuxiliaryHeadProblem(ClassificationProblem):
    """Classification with an auxiliary head whose loss (× ``aux_weight``) is added in
    training only; the model returns ``(logits, aux_logits)`` in training mode."""

    aux_weight: float = 0.4

    def _compute(self, inputs, targets):
        outputs = self.net(inputs)
        if isinstance(outputs, tuple):
            logits, aux_logits = outputs
            losses = self.loss_function(logits, targets) + self.aux_weight * self.loss_function(aux_logits, targets)
        else:
            logits = outputs
            losses = self.loss_function(logits, targets)
        return losses, logits.argmax(dim=1) == targets


class ThreeC3DProblem(ClassificationProblem):
    """3c3d on 32×32 colour images; L2 (default 0.002) on all conv and dense weights."""

    model_name = "3c3d"
    regularized_layers = (nn.Conv2d, nn.Linear)
    default_weight_decay = 0.002

    def _build_net(self):
        return ThreeC3D(3, self.num_classes)


class VGGProblem(ClassificationProblem):
    """VGG ``depth`` (16 or 19) on images resized to 224×224; L2 (default 5e-4) on the
    conv kernels only, as DeepOBS's TF model (its dense layers carry none)."""

    depth: int = 16
    regularized_layers = (nn.Conv2d,)
    default_weight_decay = 5e-4

    def _build_net(self):
        return VGG(self.depth, self.num_classes)


class WideResNetProblem(ClassificationProblem):
    """WRN-``depth``-``widening_factor``; L2 (default 5e-4) on conv and dense kernels,
    not on batch-norm parameters or the dense bias."""

    depth: int = 16
    widening_factor: int = 4
    regularized_layers = (nn.Conv2d, nn.Linear)
    default_weight_decay = 5e-4

    def _build_net(self):
        return wide_resnet(self.depth, self.widening_factor, self.num_classes)


class ResNet18Problem(ClassificationProblem):
    """CIFAR ResNet-18 trained as its recipe defines it (not a DeepOBS problem).

    Model: 3×3 stem, no max-pool, [2, 2, 2, 2] basic blocks, 64–512 channels, batch
    norm momentum 0.1. Data: the recipe pipeline of :class:`~deepobs.datasets.CIFAR10`
    (pad 4 + random crop, flip, per-channel normalisation, Cutout), not DeepOBS's
    (pad 2, colour distortions, per-image standardisation). Loss: cross-entropy with
    label smoothing 0.1, in training and in every reported loss (accuracy is the
    arg-max's, unaffected), plus L2 ½·5e-4·Σw² on conv and linear weights: the
    gradient of SGD's ``weight_decay=5e-4`` on those weights (batch norm and biases
    are not decayed). Defaults: batch size 128, 100 epochs.

    Reference setting (the recipe): SGD with momentum 0.9, lr 0.1, 5 linear warm-up
    epochs then cosine decay to 0; its target is about 94 % top-1 on CIFAR-10 and
    73 % on CIFAR-100 (not yet measured with this package).
    """

    model_name = "ResNet-18 (CIFAR variant)"
    loss_name = "cross-entropy, label smoothing 0.1"
    label_smoothing = 0.1
    regularized_layers = (nn.Conv2d, nn.Linear)
    default_weight_decay = 5e-4
    default_batch_size = 128
    default_num_epochs = 100
    #: The data pipeline of the recipe (see :class:`~deepobs.datasets.CIFAR10`).
    pipeline = "recipe"
    #: The recipe's reference setting as ``deepobs-run`` flags (docs/testproblems.md),
    #: and the recipe's final test accuracy for it (set per problem; not yet measured
    #: with this package).
    reference_setting = {"optimizer": "momentum", "lr": 0.1, "momentum": 0.9,
                         "lr_schedule": "warmup_cosine", "warmup_epochs": 5}
    target_test_accuracy: float = 0.0

    def _build_data(self, **dataset_kwargs):
        return super()._build_data(pipeline=self.pipeline, **dataset_kwargs)

    def _build_net(self):
        return resnet18(self.num_classes)


__all__ = [
    "AuxiliaryHeadProblem", "ClassificationProblem", "DataSetProblem", "ResNet18Problem",
    "ThreeC3DProblem", "VAEProblem", "VGGProblem", "WideResNetProblem",
]
