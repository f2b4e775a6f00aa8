import os
import signal
from types import SimpleNamespace

import pytest
import torch

import autoencoder.evaluation.likelihood as likelihood_module
from autoencoder.evaluation.likelihood import likelihood
from autoencoder.models.variants import Variational
from autoencoder.utils.cli import command
from tests.models.test_variants import linear_gaussian_model


@pytest.mark.parametrize("decodes", [1, 4, 10, 25, 1000])
def test_every_grouping_of_the_decodes_gives_each_image_its_own_exact_likelihood(decodes):
    # With the exact posterior every importance weight is p(x), whatever the draws: a sample weighed
    # against another image's posterior or image, or a chunk counted twice, would show.
    net, p_x = linear_gaussian_model(0.5, exact_posterior=True)
    module = SimpleNamespace(net=net, variant=Variational(sigma=0.5), hparams=SimpleNamespace(loss="mse"))
    x = torch.randn(7, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    result = likelihood(module, x, samples=10, decodes=decodes)
    assert result["samples"] == 10
    assert result["nll_nats"] == pytest.approx(-p_x.log_prob(x.flatten(1)).mean().item(), abs=1e-4)


def inexact_model():
    """A VAE whose importance weights vary with the draws, so that other draws would show."""
    net, _ = linear_gaussian_model(0.5, exact_posterior=False)
    return SimpleNamespace(net=net, variant=Variational(sigma=0.5), hparams=SimpleNamespace(loss="mse"))


def stopped(module, x, partial, monkeypatch, seed, after, stop=KeyboardInterrupt):
    """A pass with a partial file stopped by `stop` (Ctrl-C, or a crash) in its `after`+1-th group."""
    weights_of, calls = module.variant.weights_of, []

    def stopping(*args):
        calls.append(1)
        if len(calls) > after:
            raise stop
        return weights_of(*args)

    with monkeypatch.context() as patch, pytest.raises(stop):
        patch.setattr(module.variant, "weights_of", stopping)
        likelihood(module, x, samples=6, decodes=12, seed=seed, partial=partial)


def resumed_groups(module, x, partial, monkeypatch):
    """The result of a pass that goes on from `partial`, and the sizes of the groups it decoded."""
    sizes, weights_of = [], module.variant.weights_of
    monkeypatch.setattr(module.variant, "weights_of", lambda *args: sizes.append(len(args[3])) or weights_of(*args))
    return likelihood(module, x, samples=6, decodes=12, partial=partial), sizes


@pytest.mark.parametrize(
    ("stop", "save_seconds", "kept", "left"),
    [
        (KeyboardInterrupt, 3600.0, True, [2, 1]),  # Ctrl-C: written down at once, the last two groups left
        (RuntimeError, 0.0, True, [2, 1]),  # a crash: what the last periodic write kept (after every group here)
        (RuntimeError, 3600.0, False, [2, 2, 2, 2, 1]),  # a crash before any periodic write: all from the start
    ],
)
def test_a_stopped_pass_goes_on_where_it_stopped_and_ends_as_a_pass_left_alone(tmp_path, monkeypatch, caplog, stop, save_seconds, kept, left):
    module, partial = inexact_model(), tmp_path / "likelihood.partial.pt"
    x = torch.randn(9, 1, 2, 2, generator=torch.Generator().manual_seed(0))  # 2 images per forward pass: 5 groups
    alone = likelihood(module, x, samples=6, decodes=12)
    monkeypatch.setattr(likelihood_module, "SAVE_SECONDS", save_seconds)
    stopped(module, x, partial, monkeypatch, seed=0, after=3, stop=stop)
    assert partial.is_file() == kept
    assert ("stopped at 6 of 9 images" in caplog.text) == (stop is KeyboardInterrupt)

    result, sizes = resumed_groups(module, x, partial, monkeypatch)
    assert result == alone  # the same draws: the same figure, to the last digit
    assert sizes == left and not partial.is_file()  # only what was left; the file gone once done


def test_the_progress_of_another_pass_is_not_taken_for_this_ones(tmp_path, monkeypatch):
    module, partial = inexact_model(), tmp_path / "likelihood.partial.pt"
    x = torch.randn(9, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    stopped(module, x, partial, monkeypatch, seed=1, after=2)  # another seed: other draws
    assert likelihood(module, x, samples=6, decodes=12, seed=0, partial=partial) == likelihood(module, x, samples=6, decodes=12, seed=0)


def test_an_unreadable_progress_file_is_reported_and_the_pass_starts_over(tmp_path, caplog):
    module, partial = inexact_model(), tmp_path / "likelihood.partial.pt"
    x = torch.randn(9, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    partial.write_bytes(b"not a torch file")
    assert likelihood(module, x, samples=6, decodes=12, partial=partial) == likelihood(module, x, samples=6, decodes=12)
    assert "cannot be read" in caplog.text and not partial.is_file()


def test_sigterm_to_the_command_keeps_the_progress_as_ctrl_c_does(tmp_path, monkeypatch, caplog):
    module, partial = inexact_model(), tmp_path / "likelihood.partial.pt"
    x = torch.randn(9, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(likelihood_module, "SAVE_SECONDS", 3600.0)
    weights_of, calls = module.variant.weights_of, []

    def terminated(*args):  # a scheduler's SIGTERM in the fourth group
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return weights_of(*args)

    with monkeypatch.context() as patch, pytest.raises(SystemExit) as stopped, command():
        patch.setattr(module.variant, "weights_of", terminated)
        likelihood(module, x, samples=6, decodes=12, partial=partial)
    assert stopped.value.code == 143 and "stopped at 6 of 9 images" in caplog.text
    assert resumed_groups(module, x, partial, monkeypatch)[1] == [2, 1]  # goes on after the three groups done
