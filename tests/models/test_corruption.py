import pytest
import torch

from autoencoder.models.corruption import Gaussian, Masking, SaltPepper

N = 200_000  # pixels: enough for rates to be checked to about +-0.005


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("cls", [Gaussian, Masking, SaltPepper])
def test_zero_noise_is_identity(cls):
    x = torch.rand(4, 1, 28, 28)
    assert cls(noise=0)(x) is x


@pytest.mark.parametrize("cls", [Gaussian, Masking, SaltPepper])
def test_same_generator_same_noise_and_dtype_kept(cls):
    x = torch.rand(4, 1, 28, 28)
    a, b = cls(noise=0.3)(x, gen(1)), cls(noise=0.3)(x, gen(1))
    assert torch.equal(a, b)
    assert not torch.equal(a, cls(noise=0.3)(x, gen(2)))
    assert cls(noise=0.3)(x.bfloat16()).dtype == torch.bfloat16


def test_gaussian_statistics():
    x = torch.full((N,), 0.5)
    y = Gaussian(noise=0.1)(x, gen())
    assert abs((y - x).mean().item()) < 0.002
    assert abs((y - x).std().item() - 0.1) < 0.002


def test_gaussian_clips_to_unit_interval():
    x = torch.cat([torch.zeros(N // 2), torch.ones(N // 2)])
    y = Gaussian(noise=0.5)(x, gen())
    assert y.min() == 0 and y.max() == 1
    # Half of the noise pushes each pixel outside [0, 1] and is clipped back to it.
    assert abs((y == x).float().mean().item() - 0.5) < 0.01


@pytest.mark.parametrize("noise", [0.1, 0.5, 0.9])
def test_masking_zeroes_a_noise_fraction(noise):
    x = torch.rand(N) * 0.9 + 0.1
    y = Masking(noise=noise)(x, gen())
    zeroed = y == 0
    assert abs(zeroed.float().mean().item() - noise) < 0.005
    assert torch.equal(y[~zeroed], x[~zeroed])


@pytest.mark.parametrize("noise", [0.1, 0.5])
def test_salt_pepper_statistics(noise):
    x = torch.full((N,), 0.5)
    y = SaltPepper(noise=noise)(x, gen())
    salt, pepper = (y == 1).float().mean().item(), (y == 0).float().mean().item()
    assert abs(salt + pepper - noise) < 0.005
    assert abs(salt - pepper) < 0.005
    assert set(y.unique().tolist()) <= {0.0, 0.5, 1.0}


def test_masking_is_full_at_one():
    assert Masking(noise=1.0)(torch.rand(100)).eq(0).all()


def test_gaussian_accepts_noise_above_one():
    assert Gaussian(noise=1.5).noise == 1.5
