"""Architectures: published parameter counts, TF padding/resize semantics, initialisations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from deepobs.models import (MLP, VAE, AllCNNC, CharRNN, InceptionV3, LogisticRegression, ThreeC3D, TwoC2D,
                            resnet18, vae_loss, vgg16, vgg19, wide_resnet)
from deepobs.models.char_rnn import TFLSTMLayer
from deepobs.models.layers import (AvgPool2d, Conv2d, ConvTranspose2d, MaxPool2d, glorot_normal_, glorot_uniform_,
                                   resize_bilinear, same_padding)


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# Published counts (docs/testproblems.md); ResNet-18 from the issue.
PARAMETER_COUNTS = [
    ("logreg", lambda: LogisticRegression(784, 10), 7_850),
    ("mlp", lambda: MLP(784, 10), 1_336_610),
    ("2c2d", lambda: TwoC2D(1, 10), 3_274_634),
    ("3c3d-10", lambda: ThreeC3D(3, 10), 895_210),
    ("3c3d-100", lambda: ThreeC3D(3, 100), 918_340),
    ("allcnnc", lambda: AllCNNC(3, 100), 1_387_108),
    ("vgg16-10", lambda: vgg16(10), 134_301_514),
    ("vgg19-10", lambda: vgg19(10), 139_611_210),
    ("vgg16-100", lambda: vgg16(100), 134_670_244),
    ("vgg19-100", lambda: vgg19(100), 139_979_940),
    ("vgg16-1001", lambda: vgg16(1001), 138_361_641),
    ("vgg19-1001", lambda: vgg19(1001), 143_671_337),
    ("wrn16-4-svhn", lambda: wide_resnet(16, 4, 10), 2_748_890),
    ("wrn40-4-c100", lambda: wide_resnet(40, 4, 100), 8_972_340),
    ("inception_v3", lambda: InceptionV3(1001), 27_164_082),
    ("vae", lambda: VAE(), 10_151_489),
    ("char_rnn", lambda: CharRNN(83), 284_499),
    ("resnet18-10", lambda: resnet18(10), 11_173_962),
    ("resnet18-100", lambda: resnet18(100), 11_220_132),
]


@pytest.mark.parametrize("name,build,count", PARAMETER_COUNTS, ids=[c[0] for c in PARAMETER_COUNTS])
def test_parameter_count_is_published(name, build, count):
    if not name.startswith(("vgg", "inception", "wrn40")):
        assert trainable(build()) == count
        return
    with torch.device("meta"):  # shapes only: instant even for the 140M-parameter VGGs
        assert trainable(build()) == count


def _without_dropout(model: nn.Module) -> nn.Module:
    """Dropout in eval mode: random ops on the meta device cost seconds the first time."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.eval()
    return model


@pytest.mark.parametrize("build,input_shape,outputs", [
    (lambda: vgg16(10), (2, 3, 32, 32), 10),
    (lambda: vgg19(1001), (2, 3, 224, 224), 1001),
    (lambda: wide_resnet(40, 4, 100), (2, 3, 32, 32), 100),
], ids=["vgg16-cifar", "vgg19-imagenet", "wrn40-4"])
def test_big_models_forward_backward_shapes(build, input_shape, outputs):
    with torch.device("meta"):
        model = _without_dropout(build())
        logits = model(torch.empty(input_shape))
        assert logits.shape == (input_shape[0], outputs)
        logits.sum().backward()
        assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_inception_returns_aux_logits_in_training_only():
    with torch.device("meta"):
        model = InceptionV3(1001)
        logits, aux = _without_dropout(model.train())(torch.empty(2, 3, 224, 224))
        assert logits.shape == aux.shape == (2, 1001)
        (logits.sum() + aux.sum()).backward()
        assert model.eval()(torch.empty(2, 3, 224, 224)).shape == (2, 1001)
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert [d.p for d in dropouts] == [0.8]  # DeepOBS's tf.layers.dropout(x, 0.8): drop rate 0.8
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.momentum == pytest.approx(3e-4) and m.eps == 1e-3 for m in norms)


# ------------------------------------------------------------------ TF padding
@pytest.mark.parametrize("size,kernel,stride,expected", [
    (32, 3, 2, (0, 1)), (28, 5, 1, (2, 2)), (7, 4, 1, (1, 2)), (28, 4, 2, (1, 1)),
    (28, 3, 2, (0, 1)), (14, 2, 2, (0, 0)), (32, 1, 2, (0, 0)),
])
def test_same_padding_puts_the_extra_pixel_after(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_same_conv_matches_explicit_asymmetric_pad():
    torch.manual_seed(0)
    conv = Conv2d(3, 4, 3, stride=2, padding="same")
    x = torch.randn(2, 3, 32, 32)
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)
    assert conv(x).shape == (2, 4, 16, 16)
    torch.testing.assert_close(conv(x), expected)


def test_3c3d_spatial_sizes_follow_tf():
    model = ThreeC3D(3, 10)
    sizes, x = [], torch.randn(1, 3, 32, 32)
    for layer in model.features:
        x = layer(x)
        if not isinstance(layer, nn.ReLU):
            sizes.append(x.shape[-1])
    assert sizes == [28, 14, 12, 6, 6, 3]


def test_same_max_pool_never_picks_the_padding():
    x = -torch.rand(1, 1, 28, 28) - 1.0  # all negative: a zero pad would win
    out = MaxPool2d(3, 2, "same")(x)
    assert out.shape[-1] == 14 and (out < 0).all()


def test_same_avg_pool_averages_real_pixels_only():
    ones = torch.ones(1, 2, 9, 9)
    torch.testing.assert_close(AvgPool2d(3, 1, "same")(ones), ones)
    torch.testing.assert_close(AvgPool2d(2, 1, "same")(ones), ones)  # asymmetric (0, 1) pad


@pytest.mark.parametrize("size,stride", [(7, 2), (14, 1)])
def test_same_transposed_conv_is_the_adjoint_of_same_conv(size, stride):
    torch.manual_seed(0)
    transposed = ConvTranspose2d(5, 3, 4, stride, "same", bias=False)
    y = torch.randn(2, 5, size, size)
    out = transposed(y)
    assert out.shape[-1] == size * stride
    x = torch.randn_like(out)
    conv = Conv2d(3, 5, 4, stride, "same", bias=False)
    with torch.no_grad():
        conv.weight.copy_(transposed.weight)
    torch.testing.assert_close((out * x).sum(), (y * conv(x)).sum(), rtol=1e-4, atol=1e-4)


def test_resize_is_tf1_legacy_bilinear():
    x = torch.tensor([[[[0.0, 1.0]]]])
    out = resize_bilinear(x, (1, 4))  # sources 0, 0.5, 1, 1.5 (clamped): no half-pixel shift
    torch.testing.assert_close(out, torch.tensor([[[[0.0, 0.5, 1.0, 1.0]]]]))
    image = torch.rand(2, 3, 32, 32)
    assert resize_bilinear(image, 224).shape == (2, 3, 224, 224)
    assert resize_bilinear(image, 32) is image


# --------------------------------------------------------------- initialisation
def test_glorot_normal_is_tf_truncated_variant():
    torch.manual_seed(0)
    weight = torch.empty(256, 128, 3, 3)
    glorot_normal_(weight)
    target_std = math.sqrt(2.0 / (128 * 9 + 256 * 9))
    assert weight.std().item() == pytest.approx(target_std, rel=0.01)
    assert weight.abs().max().item() <= 2 * target_std / 0.87962566103423978 + 1e-7


def test_glorot_uniform_limits_and_1d_fans():
    bias = torch.empty(83)
    glorot_uniform_(bias)
    assert bias.abs().max().item() <= math.sqrt(6.0 / 166)
    assert bias.abs().max().item() > 0.8 * math.sqrt(6.0 / 166)


def test_published_bias_and_weight_constants():
    assert all((p == 0).all() for p in LogisticRegression().parameters())
    two = TwoC2D()
    for layer in (m for m in two.modules() if isinstance(m, (nn.Conv2d, nn.Linear))):
        assert (layer.bias == 0.05).all() and layer.weight.abs().max() <= 0.1
    allcnnc = AllCNNC()
    convs = [m for m in allcnnc.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 9 and all((m.bias == 0.1).all() for m in convs)
    mlp = MLP()
    for layer in (m for m in mlp.modules() if isinstance(m, nn.Linear)):
        assert (layer.bias == 0).all() and layer.weight.abs().max() <= 0.06


def test_batch_norm_momentum_is_pytorch_convention():
    wrn = wide_resnet(16, 4, 10)
    norms = [m for m in wrn.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.momentum == pytest.approx(0.1) and m.eps == 1e-5 for m in norms)
    assert all(m.momentum == 0.1 for m in resnet18().modules() if isinstance(m, nn.BatchNorm2d))


# ------------------------------------------------------------------------- VAE
def test_vae_has_no_dropout_after_third_transposed_conv():
    model = VAE()
    assert sum(isinstance(m, nn.Dropout) for m in model.encoder) == 3
    kinds = [type(m).__name__ for m in model.decoder_conv]
    assert kinds.count("Dropout") == 2
    assert kinds.index("Flatten") == kinds.index("ConvTranspose2d", 6) + 2  # conv-T 3 → ReLU → Flatten


def test_vae_forward_and_loss_formula():
    torch.manual_seed(0)
    model = VAE().eval()
    images = torch.rand(3, 1, 28, 28)
    reconstruction, mean, log_std = model(images)
    assert reconstruction.shape == images.shape and mean.shape == log_std.shape == (3, 8)
    assert ((reconstruction > 0) & (reconstruction < 1)).all()
    zeros = torch.zeros(3, 8)
    loss = vae_loss(torch.zeros(3, 1, 28, 28), images, zeros, zeros)  # KL(N(0,1) ‖ N(0,1)) = 0
    torch.testing.assert_close(loss, images.pow(2).flatten(1).sum(1))
    kl = vae_loss(images[:1], images[:1], torch.ones(1, 8), torch.zeros(1, 8))
    torch.testing.assert_close(kl, torch.tensor([4.0]))  # ½ Σ mean² over 8 latents


# --------------------------------------------------------------------- char-RNN
def _tf_lstm_reference(layer: TFLSTMLayer, x, h, c):
    """TF's LSTMCell by hand: gates i, f, g, o with the forget bias added to f."""
    outputs = []
    hidden = layer.hidden_size
    for t in range(x.shape[1]):
        z = x[:, t] @ layer.weight_ih.T + h @ layer.weight_hh.T + layer.bias
        i, f, g, o = z.split(hidden, dim=1)
        c = torch.sigmoid(f + 1.0) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs, 1), h, c


def test_lstm_layer_is_tf_lstm_cell_with_forget_bias():
    torch.manual_seed(0)
    layer = TFLSTMLayer(6, 5)
    with torch.no_grad():
        layer.bias.normal_()
    x, h, c = torch.randn(3, 7, 6), torch.randn(3, 5), torch.randn(3, 5)
    outputs, (h_out, c_out) = layer(x, (h[None], c[None]))
    expected, h_ref, c_ref = _tf_lstm_reference(layer, x, h, c)
    torch.testing.assert_close(outputs, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(c_out[0], c_ref, rtol=1e-5, atol=1e-5)
    assert not layer.forget_bias.requires_grad and (layer.bias == layer.bias).all()


def test_char_rnn_state_carries_across_chunks():
    torch.manual_seed(0)
    model = CharRNN().eval()
    tokens = torch.randint(0, 83, (2, 20))
    whole, _ = model(tokens)
    first, state = model(tokens[:, :10])
    second, _ = model(tokens[:, 10:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, rtol=1e-5, atol=1e-5)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.2]


def test_resnet18_cifar_forward():
    model = resnet18(100).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model.stem[0].stride == (1, 1) and model.stem[0].kernel_size == (3, 3)
