import pytest
import torch

from autoencoder.utils import hardware
from autoencoder.utils.cli import load_config
from autoencoder.utils.hardware import fastest_precision


@pytest.mark.parametrize("native_bf16, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_cpu(monkeypatch, native_bf16, expected):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native_bf16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert fastest_precision("cpu") == expected
    assert fastest_precision("auto") == expected


@pytest.mark.parametrize("bf16, expected", [(True, "bf16-mixed"), (False, "16-mixed")])
def test_gpu(monkeypatch, bf16, expected):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16)
    assert fastest_precision("gpu") == expected
    assert fastest_precision("auto") == expected
    assert fastest_precision("cpu") == "32-true"  # the CPU asked for explicitly, without native bf16


def test_gpu_asked_for_without_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert fastest_precision("gpu") == "32-true"


@pytest.mark.parametrize("option, accelerator", [("cpu", "cpu"), ("gpu", "gpu"), ("auto", "auto")])
def test_trainer_options_resolve(option, accelerator):
    cfg = load_config("config", [f"trainer={option}"])
    assert cfg.trainer.accelerator == accelerator
    assert cfg.trainer.precision == fastest_precision(accelerator)
    assert cfg.trainer.devices == 1
