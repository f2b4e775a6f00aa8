import pytest
import torch
from torch import nn

from autoencoder.models import sizes
from autoencoder.models.networks import ConvAutoencoder
from autoencoder.models.sizes import conv_transpose_output_size, describe, transposed_conv_by_zero_insertion
from tests.conftest import run_module


def test_the_notes_worked_example():
    x = torch.tensor([[[[1.0, 2, 3], [4, 5, 6]]]])
    deconv = nn.ConvTranspose2d(1, 3, kernel_size=4, stride=1, padding=0, bias=False)
    with torch.no_grad():
        deconv.weight.copy_((torch.arange(1, 49) / 10).reshape(1, 3, 4, 4))
        y = deconv(x)
    assert y.shape == (1, 3, 5, 6)
    torch.testing.assert_close(y[0, 0, 0], torch.tensor([0.1, 0.4, 1.0, 1.6, 1.7, 1.2]), atol=1e-5, rtol=0)
    torch.testing.assert_close(y[0, -1, -1, -1], torch.tensor(28.8), atol=1e-4, rtol=0)
    torch.testing.assert_close(transposed_conv_by_zero_insertion(x, deconv.weight, stride=1, padding=0), y)


@pytest.mark.parametrize("size", [(7, 7), (4, 6)])
def test_zero_insertion_matches_conv_transpose(size):
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(4, 3, kernel_size=3, stride=2, padding=1, output_padding=1, bias=False)
    x = torch.randn(2, 4, *size)
    with torch.no_grad():
        expected = deconv(x)
        y = transposed_conv_by_zero_insertion(x, deconv.weight, stride=2, padding=1, output_padding=1)
    assert y.shape[-2:] == tuple(conv_transpose_output_size(i, 3, 2, 1, 1) for i in size)
    torch.testing.assert_close(y, expected)


def shape_path(lines: list[str]) -> list[str]:
    """The report's shape column with repeats merged: the sizes a tensor goes through."""
    path: list[str] = []
    for line in lines[:-2]:
        shape = line[30:44].strip()
        if not path or path[-1] != shape:
            path.append(shape)
    return path


def test_report_for_the_lectures_model():
    lines = describe(ConvAutoencoder(latent_dim=2))
    down = ["1x28x28", "32x28x28", "64x14x14", "64x7x7", "3136"]
    assert shape_path(lines) == [*down, "latent 2", *down[::-1]]
    text = "\n".join(lines)
    for formula in (
        "O = floor((28 + 2*1 - 3)/1) + 1 = 28",
        "O = floor((28 + 2*1 - 3)/2) + 1 = 14",
        "O = floor((14 + 2*1 - 3)/2) + 1 = 7",
        "O = (7 - 1)*2 - 2*1 + 3 + 1 = 14",
        "O = (14 - 1)*2 - 2*1 + 3 + 1 = 28",
        "O = (28 - 1)*1 - 2*1 + 3 + 0 = 28",
    ):
        assert formula in text, formula
    assert lines[-2].startswith("parameters: ")
    assert lines[-1] == "output 1x28x28 equals input 1x28x28"


@pytest.mark.parametrize("shape", [(1, 32, 32), (1, 30, 30)])
def test_other_input_sizes_come_back_at_their_own_size(shape):
    model = ConvAutoencoder(latent_dim=32, input_shape=shape)
    size = "x".join(map(str, shape))
    assert describe(model)[-1] == f"output {size} equals input {size}"
    assert model.decode(model.encode(torch.rand(2, *shape))).shape == (2, *shape)


def test_height_and_width_get_their_own_formulas():
    text = "\n".join(describe(ConvAutoencoder(latent_dim=32, input_shape=(1, 28, 36))))
    assert "H: O = floor((28 + 2*1 - 3)/2) + 1 = 14; W: O = floor((36 + 2*1 - 3)/2) + 1 = 18" in text


def test_a_formula_that_disagrees_with_the_layer_is_an_error(monkeypatch):
    monkeypatch.setattr(sizes, "conv_output_size", lambda *args: 0)
    with pytest.raises(RuntimeError, match=r"encoder\.0 Conv2d: the size formula gives H = 0 but the layer produced 28"):
        describe(ConvAutoencoder(latent_dim=32))


def test_describe_keeps_the_training_mode():
    model = ConvAutoencoder(latent_dim=32)
    describe(model)
    assert model.training


def test_cli_prints_the_formulas_and_writes_nothing(tmp_path):
    result = run_module("autoencoder.shapes", "model=conv", "model.latent_dim=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "O = floor((28 + 2*1 - 3)/2) + 1 = 14" in result.stdout
    assert "O = (7 - 1)*2 - 2*1 + 3 + 1 = 14" in result.stdout
    assert "latent 2" in result.stdout
    assert result.stdout.splitlines()[-1] == "output 1x28x28 equals input 1x28x28"
    assert not list(tmp_path.iterdir())


def test_cli_bad_latent_dim_is_one_line(tmp_path):
    result = run_module("autoencoder.shapes", "model=conv", "model.latent_dim=-1", cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "latent_dim" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert not list(tmp_path.iterdir())
