"""The size formulas of (transposed) convolutions, and a layer-by-layer account of a network.

`describe` pushes a zero image through a network's encoder and decoder layer by layer and, beside
every Conv2d and ConvTranspose2d, writes the size formula with the layer's own numbers, checked
against the shape the layer really produced (`python -m autoencoder.shapes` prints it).
`transposed_conv_by_zero_insertion` computes a transposed conv the appendix's way (zeros between
the pixels, a border of zeros, an ordinary conv with the flipped kernel); the tests show it equals
nn.ConvTranspose2d.
"""

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn

from autoencoder.config.validation import validate
from autoencoder.models.variants import Plain
from autoencoder.utils.errors import UserError


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Conv2d: O = floor((I + 2P - F) / S) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def conv_transpose_output_size(size: int, kernel: int, stride: int, padding: int, output_padding: int = 0) -> int:
    """ConvTranspose2d: O = (I - 1) * S - 2P + F + V."""
    return (size - 1) * stride - 2 * padding + kernel + output_padding


def output_padding_for(size: int, target: int, kernel: int, stride: int, padding: int) -> int:
    """The output padding V that makes a transposed conv map `size` back to `target`."""
    v = target - conv_transpose_output_size(size, kernel, stride, padding)
    if not 0 <= v < stride:
        raise UserError(f"a transposed conv cannot map size {size} back to {target} (kernel {kernel}, stride {stride}, padding {padding})")
    return v


def _size(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _formula(label: str, layer: nn.Module, before: Tensor, after: Tensor) -> str:
    """The size formula of a (transposed) conv with its numbers, per dim when H and W differ; ""
    for other layers. Raises RuntimeError if the formula disagrees with the layer's real output."""
    if not isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
        return ""
    texts = {}
    for dim, name in enumerate("HW"):
        i, f, s, p = before.shape[2 + dim], layer.kernel_size[dim], layer.stride[dim], layer.padding[dim]
        if isinstance(layer, nn.ConvTranspose2d):
            v = layer.output_padding[dim]
            o = conv_transpose_output_size(i, f, s, p, v)
            texts[name] = f"O = ({i} - 1)*{s} - 2*{p} + {f} + {v} = {o}"
        else:
            o = conv_output_size(i, f, s, p)
            texts[name] = f"O = floor(({i} + 2*{p} - {f})/{s}) + 1 = {o}"
        if o != after.shape[2 + dim]:
            raise RuntimeError(f"{label}: the size formula gives {name} = {o} but the layer produced {after.shape[2 + dim]}")
    if texts["H"] == texts["W"]:
        return texts["H"]
    return "; ".join(f"{name}: {text}" for name, text in texts.items())


@torch.no_grad()
def describe(model: nn.Module, variant: Plain | None = None) -> list[str]:
    """One line per layer of the encoder, then the decoder: the layer, its output shape and, for
    convs, the size formula; then the parameter count and whether the output has the input's shape.
    The `variant` turns the encoder's output into the decoder's input (a VAE's mean and log-variance
    into a code)."""
    variant = variant or Plain()
    was_training = model.training
    model.eval()  # BatchNorm with its running statistics, as at inference
    x = torch.zeros(1, *model.input_shape)
    lines = [f"{'input':<30} {_size(x.shape[1:])}"]
    for part in ("encoder", "decoder"):
        layers = list(getattr(model, part).named_children())
        for index, (name, layer) in enumerate(layers):
            label = f"{part}.{name} {type(layer).__name__}"
            y = layer(x)
            last_of_encoder = part == "encoder" and index == len(layers) - 1
            shape = _size(y.shape[1:])
            if last_of_encoder:  # e.g. "2 x latent 16": a VAE's mean and log-variance
                shape = f"{variant.heads} x latent {y.shape[1] // variant.heads}" if variant.heads > 1 else f"latent {y.shape[1]}"
            lines.append(f"{label:<30} {shape:<12} {_formula(label, layer, x, y)}".rstrip())
            x = variant.code(y) if last_of_encoder else y
    model.train(was_training)
    lines.append(f"parameters: {sum(p.numel() for p in model.parameters()):,}")
    same = tuple(x.shape[1:]) == tuple(model.input_shape)
    lines.append(f"output {_size(x.shape[1:])} {'equals' if same else 'differs from'} input {_size(model.input_shape)}")
    return lines


def transposed_conv_by_zero_insertion(x: Tensor, weight: Tensor, stride: int, padding: int, output_padding: int = 0) -> Tensor:
    """nn.ConvTranspose2d (no bias) computed as an ordinary conv, the way the appendix draws it.

    Put stride - 1 zeros between neighbouring input pixels, surround the result with F - P - 1
    zeros (plus output_padding more at the bottom and right), then slide the kernel over it with
    stride 1. `weight` has ConvTranspose2d's layout (C_in, C_out, kH, kW); F.conv2d wants
    (C_out, C_in, kH, kW) and the kernel turned by 180 degrees."""
    b, c, h, w = x.shape
    kh, kw = weight.shape[-2:]
    spread = x.new_zeros(b, c, (h - 1) * stride + 1, (w - 1) * stride + 1)
    spread[..., ::stride, ::stride] = x
    ph, pw = kh - padding - 1, kw - padding - 1
    spread = F.pad(spread, (pw, pw + output_padding, ph, ph + output_padding))
    return F.conv2d(spread, weight.flip(-2, -1).transpose(0, 1))


def describe_configured(cfg: DictConfig) -> list[str]:
    """`describe` for the network of a training config, after checking the config."""
    validate(cfg)
    module = instantiate(cfg.module)
    return describe(module.net, module.variant)
