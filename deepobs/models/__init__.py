"""Architectures as plain ``nn.Module``s: no data, no loss plumbing, no runner."""

from deepobs.models.quadratic import NoisyQuadratic, deep_learning_hessian, haar_rotation
from deepobs.models.two_d import NoisyTwoD, beale, branin, rosenbrock
from deepobs.models.basic import MLP, LogisticRegression
from deepobs.models.conv import AllCNNC, ThreeC3D, TwoC2D
from deepobs.models.vgg import VGG, vgg16, vgg19
from deepobs.models.wrn import WideResNet, wide_resnet
from deepobs.models.inception import InceptionV3
from deepobs.models.vae import VAE, vae_loss
from deepobs.models.char_rnn import CharRNN
from deepobs.models.resnet import ResNet, resnet18
from deepobs.models.bk_core import BKCore, resolvent_diagonal
from deepobs.models.resnet_bk import ResNetBK, ResNetBKConfig, resnet_bk
# The builder ``transformer`` stays in its module: exported here it would hide the module.
from deepobs.models.transformer import Transformer, TransformerConfig

__all__ = [
    "NoisyQuadratic", "deep_learning_hessian", "haar_rotation",
    "NoisyTwoD", "beale", "branin", "rosenbrock",
    "LogisticRegression", "MLP", "TwoC2D", "ThreeC3D", "AllCNNC", "VGG", "vgg16", "vgg19",
    "WideResNet", "wide_resnet", "InceptionV3", "VAE", "vae_loss", "CharRNN", "ResNet", "resnet18",
    "BKCore", "resolvent_diagonal", "ResNetBK", "ResNetBKConfig", "resnet_bk",
    "Transformer", "TransformerConfig",
]
