import pytest
import torch

from autoencoder.models.corruption import Chain, Flip, Gaussian, Grayscale, Masking, Rotation, SaltPepper, Translation, translate
from autoencoder.utils.errors import UserError

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


# The transformations: each against its definition, pixel by pixel.


def image(c=1, h=5, w=5):
    """A batch of one image whose pixels are all different, so that a permutation shows."""
    return torch.arange(c * h * w, dtype=torch.float32).view(1, c, h, w) / (c * h * w)


def every(t, x, k):
    """Transformation k of `t`'s set applied to every image of `x`."""
    return t.transform(x, torch.full((len(x),), k))


def by_definition(x, where):
    """out[..., i, j] = x[..., where(i, j)] for every pixel."""
    h, w = x.shape[-2:]
    out = torch.empty_like(x)
    for i in range(h):
        for j in range(w):
            out[..., i, j] = x[..., where(i, j)[0], where(i, j)[1]]
    return out


ROTATIONS = {  # counter-clockwise, on a 5x5 image
    0: lambda i, j: (i, j),
    90: lambda i, j: (j, 4 - i),
    180: lambda i, j: (4 - i, 4 - j),
    270: lambda i, j: (4 - j, i),
}
FLIPS = {"none": lambda i, j: (i, j), "horizontal": lambda i, j: (i, 4 - j), "vertical": lambda i, j: (4 - i, j), "both": lambda i, j: (4 - i, 4 - j)}


def test_rotations_are_the_pixel_permutations_of_their_definition_and_undo_each_other():
    x = image(c=2)
    rotation = Rotation(degrees=[0, 90, 180, 270])
    for k, degrees in enumerate(rotation.degrees):
        rotated = every(rotation, x, k)
        assert torch.equal(rotated, by_definition(x, ROTATIONS[degrees]))
        assert torch.equal(rotated.flatten().sort().values, x.flatten().sort().values)  # a permutation
        assert torch.equal(every(rotation, rotated, rotation.degrees.index((360 - degrees) % 360)), x)


def test_flips_are_the_pixel_permutations_of_their_definition_and_their_own_inverses():
    x = image(c=3)
    flip = Flip(flips=list(FLIPS))
    for k, name in enumerate(flip.flips):
        flipped = every(flip, x, k)
        assert torch.equal(flipped, by_definition(x, FLIPS[name]))
        assert torch.equal(every(flip, flipped, k), x)
    assert Flip().flips == ("none", "horizontal")


def test_translations_move_the_image_and_fill_the_border_with_zeros():
    x = image() + 0.1  # no pixel is 0, so the filled border shows
    translation = Translation(shift=2)
    assert translation.count == 9 and translation.offsets[0] == (0, 0)
    for k, (dy, dx) in enumerate(translation.offsets):
        moved = every(translation, x, k)
        expected = torch.zeros_like(x)
        for i in range(5):
            for j in range(5):
                if 0 <= i - dy < 5 and 0 <= j - dx < 5:
                    expected[..., i, j] = x[..., i - dy, j - dx]
        assert torch.equal(moved, expected)
        back = translate(moved, -dy, -dx)  # what stayed in the frame comes back exactly
        kept = back != 0
        assert torch.equal(back[kept], x[kept]) and kept.sum() == (5 - abs(dy)) * (5 - abs(dx))


def test_grayscale_puts_the_luma_in_every_channel_and_leaves_gray_images_alone():
    x = torch.rand(4, 3, 6, 6)
    gray = every(Grayscale(), x, 0)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        torch.testing.assert_close(gray[:, c], luma)
    already = x[:, :1].expand(-1, 3, -1, -1)
    torch.testing.assert_close(every(Grayscale(), already, 0), already)


def test_each_image_gets_its_own_transformation():
    x = image().repeat(4, 1, 1, 1)
    rotation = Rotation()
    out = rotation.transform(x, torch.tensor([2, 0, 3, 1]))
    for i, k in enumerate([2, 0, 3, 1]):
        assert torch.equal(out[i], every(rotation, x[:1], k)[0])


def test_draws_are_seeded_and_cover_the_set():
    x = torch.rand(4000, 1, 5, 5)
    rotation = Rotation()
    a, b = rotation.draw(x, gen(3)), rotation.draw(x, gen(3))
    assert torch.equal(a, b) and not torch.equal(a, rotation.draw(x, gen(4)))
    assert torch.equal(rotation(x[:8], gen(3)), rotation.transform(x[:8], rotation.draw(x[:8], gen(3))))
    counts = torch.bincount(a, minlength=4).float() / len(a)
    assert (counts - 0.25).abs().max() < 0.03


def test_a_chain_numbers_its_transformations_in_mixed_radix_and_adds_its_noise_after_them():
    x = torch.rand(6, 1, 5, 5)
    chain = Chain([Rotation(), Flip(), Gaussian(noise=0.1)])
    assert chain.count == 8
    for k in range(8):  # rotation digit k % 4, flip digit k // 4
        assert torch.equal(every(chain, x, k), every(Flip(), every(Rotation(), x, k % 4), k // 4))
    index = torch.tensor([0, 1, 2, 5, 6, 7])
    noisy, clean = chain.apply(x, index, gen(1)), chain.transform(x, index)
    assert torch.equal(noisy, Gaussian(noise=0.1)(clean, gen(1)))
    assert torch.equal(chain(x, gen(2)), chain(x, gen(2)))


@pytest.mark.parametrize(
    "build, shape, message",
    [
        (lambda: Chain([Gaussian(noise=0.1)]), None, "corruption.steps must include a transformation"),
        (lambda: Translation(shift=5), (1, 5, 8), "corruption.shift=5 moves a 5x8 image out of the frame: it must be less than 5"),
        (lambda: Rotation(), (1, 5, 8), "rotating by 90 or 270 degrees needs square images"),
        (lambda: Chain([Grayscale()]), (1, 5, 5), r"corruption=grayscale erases colour, and these images have 1 channel\(s\)"),
    ],
)
def test_bad_settings_are_user_errors(build, shape, message):
    with pytest.raises(UserError, match=message):
        build().check(shape)


def test_a_half_turn_fits_images_that_are_not_square():
    Rotation(degrees=[0, 180]).check((1, 5, 8))
    assert every(Rotation(degrees=[180]), torch.rand(2, 1, 5, 8), 0).shape == (2, 1, 5, 8)


def test_each_transformation_has_a_name_in_index_order():
    assert Chain([Rotation(degrees=[0, 90]), Gaussian(), Flip()]).names == [
        "rotated 0, flipped none",
        "rotated 90, flipped none",
        "rotated 0, flipped horizontal",
        "rotated 90, flipped horizontal",
    ]
    assert Translation(shift=1).names[:2] == ["moved +0, +0", "moved +0, -1"] and Grayscale().names == ["gray"]
