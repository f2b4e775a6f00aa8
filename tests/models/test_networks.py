import pytest
import torch
from torch import nn

from autoencoder.models.networks import ConvAutoencoder, MLPAutoencoder
from autoencoder.models.sizes import conv_output_size, conv_transpose_output_size
from autoencoder.utils.errors import UserError


@pytest.mark.parametrize("model_cls", [ConvAutoencoder, MLPAutoencoder])
@pytest.mark.parametrize("latent_dim", [1, 2, 8, 32])
def test_shapes(model_cls, latent_dim):
    model = model_cls(latent_dim=latent_dim)
    x = torch.rand(5, 1, 28, 28)
    z = model.encoder(x)
    y = model.decoder(z)
    assert z.shape == (5, latent_dim)
    assert y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1  # Sigmoid output


def test_conv_model_is_the_lectures_network():
    model = ConvAutoencoder(latent_dim=2)
    convs = [m for m in model.encoder if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [(1, 32, 1), (32, 64, 2), (64, 64, 2)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.encoder) == 3
    assert sum(isinstance(m, nn.LeakyReLU) for m in model.encoder) == 3
    assert model.encoder[-1].in_features == 64 * 7 * 7 and model.encoder[-1].out_features == 2
    deconvs = [m for m in model.decoder if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0], c.output_padding[0]) for c in deconvs] == [(64, 64, 2, 1), (64, 32, 2, 1), (32, 1, 1, 0)]
    assert isinstance(model.decoder[-1], nn.Sigmoid)


@pytest.mark.parametrize("shape", [(1, 32, 32), (1, 30, 30), (3, 28, 36), (1, 9, 9)])
def test_conv_model_restores_other_input_sizes(shape):
    model = ConvAutoencoder(latent_dim=4, input_shape=shape)
    x = torch.rand(2, *shape)
    assert model.decode(model.encode(x)).shape == x.shape


def test_size_formulas_on_the_lectures_numbers():
    assert [conv_output_size(i, 3, s, 1) for i, s in ((28, 1), (28, 2), (14, 2))] == [28, 14, 7]
    assert conv_transpose_output_size(7, 3, 2, 1, 1) == 14
    assert conv_transpose_output_size(4, 3, 2, 1, 0) == 7  # the appendix's step-by-step example
    assert conv_transpose_output_size(2, 4, 1, 0) == 5 and conv_transpose_output_size(3, 4, 1, 0) == 6


def test_input_too_small_for_the_conv_stages():
    with pytest.raises(UserError, match=r"model.input_shape \[1, 4, 4\] is too small for 3 conv stages"):
        ConvAutoencoder(latent_dim=32, input_shape=(1, 4, 4), kernel_size=5, padding=0)


def test_conv_autoencoder_with_hidden_fully_connected_layers():
    net = ConvAutoencoder(latent_dim=2, fc_hidden=[256, 64])
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3136, 256), (256, 64), (64, 2), (2, 64), (64, 256), (256, 3136)]
    x = torch.rand(3, 1, 28, 28)
    assert net.encode(x).shape == (3, 2) and net.decode(net.encode(x)).shape == x.shape
