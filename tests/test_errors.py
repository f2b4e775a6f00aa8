import pytest
from hydra.errors import InstantiationException, MissingConfigException

from autoencoder.errors import UserError, exit_on_user_error, user_message


def raised_from(outer: Exception, cause: Exception) -> Exception:
    try:
        try:
            raise cause
        except Exception as exc:
            raise outer from exc
    except Exception as exc:
        return exc


def test_user_error_found_through_hydra_wrapping():
    exc = raised_from(InstantiationException("Error in call to target 'x'"), UserError("model.latent_dim must be ..."))
    assert user_message(exc) == "model.latent_dim must be ..."


def test_unknown_group_option():
    exc = MissingConfigException("In 'config': Could not find 'model/foo'", missing_cfg_file="model/foo", options=["mlp", "conv"])
    assert user_message(exc) == "unknown model option 'foo' (allowed: conv, mlp)"


def test_bug_is_not_a_user_error():
    assert user_message(raised_from(RuntimeError("wrapped"), ZeroDivisionError("bug"))) is None


def test_exit_on_user_error(capsys, monkeypatch):
    monkeypatch.delenv("AUTOENCODER_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info, exit_on_user_error():
        raise UserError("data.batch_size must be an integer >= 1, got 0")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: data.batch_size must be an integer >= 1, got 0\n"
    with pytest.raises(ZeroDivisionError), exit_on_user_error():
        raise ZeroDivisionError  # a bug keeps its traceback


def test_debug_switch_keeps_the_traceback(monkeypatch):
    monkeypatch.setenv("AUTOENCODER_DEBUG", "1")
    with pytest.raises(UserError), exit_on_user_error():
        raise UserError("shown with its traceback")
