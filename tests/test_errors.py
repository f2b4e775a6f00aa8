import importlib
import logging
import shutil
import sys
import warnings
from types import SimpleNamespace

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import InstantiationException, MissingConfigException
from PIL import Image

from autoencoder.utils.cli import command
from autoencoder.utils.errors import UserError, user_message
from tests.data.test_cifar import make_fake_cifar


def raised_from(outer: Exception, cause: Exception) -> Exception:
    try:
        try:
            raise cause
        except Exception as exc:  # noqa: BLE001 - returns whatever was raised
            raise outer from exc
    except Exception as exc:  # noqa: BLE001 - returns whatever was raised
        return exc


def test_user_error_found_through_hydra_wrapping():
    exc = raised_from(InstantiationException("Error in call to target 'x'"), UserError("model.latent_dim must be ..."))
    assert user_message(exc) == "model.latent_dim must be ..."


def test_unknown_group_option():
    exc = MissingConfigException("In 'config': Could not find 'model/foo'", missing_cfg_file="model/foo", options=["mlp", "conv"])
    assert user_message(exc) == "unknown model option 'foo' (allowed: conv, mlp)"


def test_bug_is_not_a_user_error():
    assert user_message(raised_from(RuntimeError("wrapped"), ZeroDivisionError("bug"))) is None


def test_command_turns_user_errors_into_one_line(capsys, monkeypatch):
    monkeypatch.delenv("AUTOENCODER_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info, command():
        raise UserError("data.batch_size must be an integer >= 1, got 0")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: data.batch_size must be an integer >= 1, got 0\n"
    with pytest.raises(ZeroDivisionError), command():
        raise ZeroDivisionError  # a bug keeps its traceback


def test_debug_switch_keeps_the_traceback(monkeypatch):
    monkeypatch.setenv("AUTOENCODER_DEBUG", "1")
    with pytest.raises(UserError), command():
        raise UserError("shown with its traceback")


def bad_inputs_setup(tmp_path, fake_mnist, checkpoint) -> dict[str, str]:
    """Bad files beside good ones, and an earlier run whose outputs must survive every attempt."""
    for name, damage in (("corrupt", lambda b: b"garbage!" + b[8:]), ("truncated", lambda b: b[: len(b) // 2])):
        raw = tmp_path / name / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for f in (fake_mnist / "MNIST" / "raw").iterdir():
            (raw / f.name).write_bytes(damage(f.read_bytes()) if f.name.startswith("train-images") else f.read_bytes())
    batch = make_fake_cifar(tmp_path / "corrupt") / "cifar-10-batches-py" / "data_batch_1"  # and a truncated CIFAR-10 batch
    batch.write_bytes(batch.read_bytes()[:1000])
    (tmp_path / "no_images").mkdir()  # for data=folder: a folder without images, and one with an unreadable image
    (tmp_path / "bad_image").mkdir()
    for i in range(4):
        Image.new("L", (8, 8), i).save(tmp_path / "bad_image" / f"{i}.png")
    (tmp_path / "bad_image" / "x.png").write_bytes(b"not an image")
    (tmp_path / "notes.ckpt").write_text("not a checkpoint\n")
    (tmp_path / "a_file").write_text("")
    earlier = tmp_path / "outputs" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "metrics.json").write_text('{"test_loss": 0.01}\n')
    run = checkpoint.parent.parent  # a completed run, and one killed while writing its checkpoint
    shutil.copytree(run, tmp_path / "finished")
    shutil.copytree(run, tmp_path / "cut_short", ignore=shutil.ignore_patterns("metrics.json", "best-*"))
    last = tmp_path / "cut_short" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    return {"tmp": str(tmp_path), "data": str(fake_mnist), "ckpt": str(checkpoint)}


TRAIN = ("autoencoder.train", "data.data_dir={data}", "data.check_md5=false", "data.val_size=50", "trainer.max_epochs=1", "trainer.limit_train_batches=2")
SEARCH = ("autoencoder.train", "-m", "hparams_search=optuna", *TRAIN[1:])
# As long as TRAIN, whose keys a test's id leaves out: the ids of data=folder show its data.path.
FOLDER = ("autoencoder.train", "data=folder", "data.size=8", "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1")
BAD_INPUTS = [
    (TRAIN + ("model.latent_dim=-3",), "model.latent_dim must be an integer >= 1, got -3"),
    (TRAIN + ("model.latent_dim=2.5",), "model.latent_dim must be an integer >= 1, got 2.5"),
    (TRAIN + ("data.batch_size=0",), "data.batch_size must be an integer >= 1, got 0"),
    (TRAIN + ("noise=-0.1",), "noise must be a number >= 0, got -0.1"),
    (TRAIN + ("corruption=masking", "noise=1.5"), "noise must be a number in [0, 1] for the Masking corruption, got 1.5"),
    (TRAIN + ("optimizer.lr=-0.1",), "optimizer.lr must be a number > 0, got -0.1"),
    (
        TRAIN + ("corruption=shear",),
        "unknown corruption option 'shear' (allowed: chain, flip, gaussian, grayscale, masking, rotation, salt_pepper, translation)",
    ),
    (TRAIN + ("corruption=rotation", "corruption.degrees=[]"), "corruption.degrees must be a non-empty list of distinct angles from 0, 90, 180, 270, got []"),
    (TRAIN + ("corruption=chain", "corruption.steps=[]"), "corruption.steps must be a non-empty list of corruption configs, each with a _target_, got []"),
    (
        TRAIN + ("corruption=flip", "corruption.flips=[diagonal]"),
        "corruption.flips must be a non-empty list of names from none, horizontal, vertical, both, got ['diagonal']",
    ),
    (
        TRAIN + ("corruption=chain", "corruption.steps.0.degrees=[45]"),
        "corruption.steps.0.degrees must be a non-empty list of distinct angles from 0, 90, 180, 270, got [45]",
    ),
    (TRAIN + ("corruption=translation", "corruption.shift=28"), "corruption.shift=28 moves a 28x28 image out of the frame: it must be less than 28"),
    (TRAIN + ("corruption=grayscale",), "corruption=grayscale erases colour, and these images have 1 channel(s), not 3"),
    (TRAIN + ("module.transform_head_weight=0.1",), "module.transform_head_weight > 0 predicts the transformation: it needs a transformation corruption"),
    (TRAIN + ("seed=abc",), "seed must be an integer in [0, 4294967295], got 'abc'"),
    (TRAIN + ("early_stopping.patience=-1",), "early_stopping.patience must be an integer >= 0, got -1"),
    (TRAIN + ("trainer=gpu", "trainer.precision=32-true"), "the Trainer refused trainer.accelerator=gpu"),
    (
        TRAIN + ("data=fashion_mnist", "data.classes=[sneakers]"),
        "data.classes: 'sneakers' is not a class of FashionMNIST (its classes: 0 T-shirt/top",
    ),
    (TRAIN + ("data=kmnist", "data.data_dir={tmp}/missing"), "KMNIST is not in {tmp}/missing/KMNIST/raw and could not be downloaded"),
    (TRAIN + ("data=cifar10", "data.data_dir={tmp}/missing"), "CIFAR-10 is not in {tmp}/missing/cifar-10-batches-py and could not be downloaded"),
    (
        TRAIN + ("data=cifar10", "data.data_dir={tmp}/missing", "data.download=false"),
        "CIFAR-10 files missing from {tmp}/missing/cifar-10-batches-py: data_batch_1",
    ),
    (TRAIN + ("data=cifar10", "data.data_dir={tmp}/corrupt"), "{tmp}/corrupt/cifar-10-batches-py/data_batch_1 cannot be unpickled"),
    (TRAIN + ("model=resnet",), "unknown model option 'resnet' (allowed: conv, mlp)"),
    (TRAIN + ("variant=wae",), "unknown variant option 'wae' (allowed: ae, contractive, iwae, sparse, vae, vqvae)"),
    (TRAIN + ("variant=vae", "prior=gaussian"), "unknown prior option 'gaussian' (allowed: mixture, standard, vamp)"),
    (TRAIN + ("prior=vamp",), "prior (VampPrior) is a setting of the variants with a prior (iwae, vae); the Plain variant has none"),
    (
        TRAIN + ("variant=vae", "prior.components=3"),
        "prior must be a prior chosen as a group option (prior=standard, vamp or mixture) or null, got",
    ),
    (TRAIN + ("variant=vae", "variant.beta=-1"), "variant.beta must be a number >= 0, got -1"),
    (TRAIN + ("variant=sparse", "variant.weight=-0.5"), "variant.weight must be a number >= 0, got -0.5"),
    (TRAIN + ("variant=vae", "data.binarize=true"), "variant=vae with data.binarize=true needs loss=bce"),
    (TRAIN + ("variant=contractive", "compile=true"), "variant=contractive needs compile=false"),
    (TRAIN + ("optimizer=lbfgs",), "unknown optimizer option 'lbfgs' (allowed: adam, adamw)"),
    (TRAIN + ("scheduler=cyclic",), "unknown scheduler option 'cyclic' (allowed: cosine, none, onecycle, plateau)"),
    (TRAIN + ("scheduler=onecycle", "scheduler.pct_start=1.5"), "scheduler.pct_start must be a number in (0, 1), got 1.5"),
    (TRAIN + ("scheduler=cosine", "scheduler.warmup=-0.1"), "scheduler.warmup must be a number in [0, 1), got -0.1"),
    (TRAIN + ("scheduler=onecycle", "scheduler.max_lr=0"), "scheduler.max_lr must be a number > 0, got 0"),
    (TRAIN + ("scheduler=onecycle", "trainer.max_epochs=-1"), "a per-step schedule (OneCycleLR) needs the run's length: set trainer.max_epochs or"),
    (TRAIN + ("trainer.max_epochs=abc",), "trainer.max_epochs must be an integer >= -1 or null, got 'abc'"),
    (TRAIN + ("trainer.precision=16-mixed",), "trainer.precision=16-mixed needs a GPU"),
    (TRAIN + ("data.data_dir={tmp}/missing",), "MNIST is not in {tmp}/missing/MNIST/raw and could not be downloaded"),
    (TRAIN + ("data.data_dir={tmp}/corrupt",), "is not an unsigned-byte IDX file (bad magic number"),
    (TRAIN + ("data.data_dir={tmp}/truncated",), "the file is truncated or corrupt"),
    (FOLDER + ("data.path={tmp}/missing",), "data.path {tmp}/missing does not exist; give the folder that holds your images"),
    (FOLDER + ("data.path={tmp}/no_images",), "data.path {tmp}/no_images holds no image files (the files read: .png, .jpg, .jpeg, .bmp, .gif, .webp, .tif"),
    (FOLDER + ("data.path={tmp}/bad_image",), "{tmp}/bad_image/x.png is not an image Pillow can read (cannot identify image file"),
    (FOLDER + ("data.path={tmp}/bad_image", "data.in_memory=maybe"), "data.in_memory must be one of auto, True, False, got 'maybe'"),
    (
        FOLDER + ("data.path={tmp}/bad_image", "data.in_memory=false", "data.cache_dir={tmp}/a_file/caches"),
        "cannot write the image cache test-8-RGB.u8 in {tmp}/a_file/caches/bad_image-",
    ),
    (TRAIN + ("ckpt_path={tmp}/missing.ckpt",), "ckpt_path {tmp}/missing.ckpt does not exist"),
    (TRAIN + ("ckpt_path={tmp}/notes.ckpt",), "ckpt_path {tmp}/notes.ckpt is not a Lightning checkpoint this framework wrote"),
    (TRAIN + ("ckpt_path={ckpt}", "model.latent_dim=8"), "holds a different model than the configured one"),
    (TRAIN + ("resume={tmp}/outputs",), "resume={tmp}/outputs is not a run folder with config.yaml and a checkpoint in checkpoints/"),
    (TRAIN + ("resume={tmp}/finished",), "resume={tmp}/finished: that run is completed (metrics.json), so there is nothing to resume"),
    (
        TRAIN + ("resume={tmp}/cut_short",),
        "ckpt_path {tmp}/cut_short/checkpoints/last.ckpt is not a Lightning checkpoint this framework wrote, or is truncated",
    ),
    (TRAIN + ("interrupts.signals=[SIGKILL]",), "interrupts.signals must be a list of names from SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGHUP, got ['SIGKILL']"),
    (TRAIN + ("interrupts.signals=[SIGINT,SIGTERM]",), "interrupts.requeue_signals must be among interrupts.signals (SIGINT, SIGTERM), got SIGUSR1"),
    (TRAIN + ("resume_unfinished=maybe",), "resume_unfinished must be true or false, got 'maybe'"),
    (TRAIN + ("progress.every_seconds=0",), "progress.every_seconds must be a number > 0, got 0"),
    (TRAIN + ("progress.every_fraction=-1",), "progress.every_fraction must be a number in (0, 1], got -1"),
    (TRAIN + ("nosie=0.3",), "unknown key 'nosie' in conf/config.yaml and the groups chosen: did you mean noise?"),
    (TRAIN + ("variant=vae", "variant.bta=2"), "unknown key 'variant.bta' (not a setting of Variational): did you mean variant.beta?"),
    (TRAIN + ("variant=iwae", "variant.samples=0"), "variant.samples must be an integer >= 1, got 0"),
    (TRAIN + ("variant=vae", "prior=vamp", "prior.pseudo_inputs=0"), "prior.pseudo_inputs must be an integer >= 1, got 0"),
    (TRAIN + ("variant=iwae", "prior=mixture", "prior.components=0"), "prior.components must be an integer >= 1, got 0"),
    (TRAIN + ("variant=vqvae", "variant.codebook_size=1"), "variant.codebook_size=1: a codebook of 1 cannot code anything"),
    (TRAIN + ("variant=vqvae", "variant.decay=1"), "variant.decay must be a number in [0, 1), got 1"),
    (TRAIN + ("variant=vqvae", "model=mlp"), "model=mlp gives a flat code, and this variant (variant=vqvae) codes a grid over a feature map: use model=conv"),
    (
        ("autoencoder.code_prior", "ckpt_path={ckpt}"),
        "ckpt_path {ckpt} holds a Plain variant: a code prior is learned over a VQ-VAE's grid (variant=vqvae)",
    ),
    (("autoencoder.code_prior", "ckpt_path={vq_ckpt}", "epochs=0"), "epochs must be an integer >= 1, got 0"),
    (("autoencoder.code_prior", "ckpt_path={vq_ckpt}", "prior.layers=0"), "prior.layers must be an integer >= 1, got 0"),
    (("autoencoder.sample", "ckpt_path={vq_ckpt}"), "source=auto: this VQVAE has no prior over its codes yet; train one with python -m autoencoder.code_prior"),
    (TRAIN + ("--foo",), "unrecognized arguments: --foo; the options are --help, --hydra-help"),
    (
        ("autoencoder.evaluate", "ckpt_path={ckpt}", "denoising.nosie=[0.3]"),
        "unknown key 'denoising.nosie' (not a setting of Denoising): did you mean denoising.noise?",
    ),
    (TRAIN + ("evaluate=yes",), "evaluate must be true or false, got 'yes'"),
    (TRAIN + ("evaluate=true", "evaluation.probe.knn_k=0"), "evaluation.probe.knn_k must be an integer >= 1, got 0"),
    (TRAIN + ("evaluate=true", "+evaluation.measures.toy=5"), "measures.toy must be a measure config with a _target_, got 5"),
    (TRAIN + ("evaluate=true", "trainer.enable_checkpointing=false"), "evaluate=true evaluates the run's best checkpoint, and this run saves none"),
    (TRAIN + ("hydra.run.dir={tmp}/a_file/run",), "cannot write or read {tmp}/a_file/run: Not a directory"),
    (TRAIN + ("hparams_search=optuna",), "hparams_search=optuna runs a search: start it with -m"),
    (SEARCH + ("hydra/sweeper/pruner=patient",), "unknown hydra/sweeper/pruner option 'patient' (allowed: hyperband, median, none)"),
    (SEARCH + ("hydra.sweeper.n_trials=0",), "hydra.sweeper.n_trials must be an integer >= 1, got 0"),
    (SEARCH + ("hydra.sweeper.storage=sqlite:///{tmp}/a_file/study.db",), "hydra.sweeper.storage=sqlite:///{tmp}/a_file/study.db cannot be opened"),
    (SEARCH + ("noise=glob(*)",), "noise=glob(*) is not a sweep Optuna can search"),
    (
        SEARCH + ("hydra.sweeper.storage=postgresql://nobody@127.0.0.1:1/study",),
        "hydra.sweeper.storage=postgresql://nobody@127.0.0.1:1/study cannot be opened ((psycopg.OperationalError) connection failed",
    ),
    (
        SEARCH + ("hydra.sweeper.storage=postgres_ql://localhost/study",),
        "hydra.sweeper.storage=postgres_ql://localhost/study cannot be opened (Can't load plugin",
    ),
    (
        SEARCH + ("hydra.sweeper.storage=journal:///{tmp}/a_file/study.log",),
        "hydra.sweeper.storage=journal:///{tmp}/a_file/study.log cannot be opened ([Errno 20] Not a directory",
    ),
    (
        SEARCH + ("hydra.sweeper.heartbeat=10", "hydra.sweeper.grace_period=5"),
        "hydra.sweeper.grace_period must be longer than hydra.sweeper.heartbeat (10 s), got 5",
    ),
    (("autoencoder.evaluate", "ckpt_path={tmp}/notes.ckpt"), "is not a Lightning checkpoint this framework wrote"),
    (("autoencoder.evaluate", "ckpt_path={ckpt}", "likelihood.samples=0"), "likelihood.samples must be an integer >= 1, got 0"),
    (("autoencoder.evaluate", "ckpt_path={ckpt}", "generation.samples=3"), "generation.samples=3 must be larger than generation.knn_k=3"),
    (("autoencoder.evaluate", "ckpt_path={ckpt}", "generation.fit_size=0"), "generation.fit_size must be an integer >= 1 or null, got 0"),
    (("autoencoder.classifier", "epochs=0"), "epochs must be an integer >= 1, got 0"),
    (("autoencoder.classifier", "data.data_dir={tmp}/missing"), "MNIST is not in {tmp}/missing/MNIST/raw and could not be downloaded"),
    (
        ("autoencoder.evaluate", "ckpt_path={ckpt}", "denoising.corruptions=[blur]"),
        "denoising.corruptions must be a non-empty list of names from gaussian, masking, salt_pepper, got ['blur']",
    ),
    (("autoencoder.evaluate", "ckpt_path={ckpt}", "+measures.toy=5"), "measures.toy must be a measure config with a _target_, got 5"),
    (
        ("autoencoder.evaluate", "ckpt_path={ckpt}", "+measures.toy._target_=autoencoder.training.callbacks.StopOnDivergence"),
        "measures.toy: autoencoder.training.callbacks.StopOnDivergence is not a measure (a subclass of autoencoder.evaluation.measures.base.Measure)",
    ),
    (
        ("autoencoder.evaluate", "ckpt_path={ckpt}", "+measures.toy._target_=autoencoder.evaluation.measures.toy.Toy"),
        "measures.toy._target_: cannot load autoencoder.evaluation.measures.toy.Toy (Error loading 'autoencoder.evaluation.measures.toy.Toy')",
    ),
    (("autoencoder.evaluate", "ckpt_path={ckpt}", "data.data_dir={tmp}/missing"), "MNIST is not in {tmp}/missing/MNIST/raw and could not be downloaded"),
    (("autoencoder.encode", "ckpt_path={ckpt}", "split=validation"), "split must be one of train, val, test, got 'validation'"),
    (("autoencoder.encode", "ckpt_path={ckpt}", "data=cifar10"), "data: CIFAR10's images are [3, 32, 32] but the model was trained on [1, 28, 28] images"),
    (("autoencoder.encode", "ckpt_path={ckpt}", "data.data_dri=x"), "data.data_dri is not a setting of the run's data (MNIST): did you mean data.data_dir?"),
    (("autoencoder.sample", "ckpt_path={ckpt}", "data=imagenet"), "unknown data option 'imagenet' (allowed: cifar10, fashion_mnist, folder, kmnist, mnist)"),
    (("autoencoder.anomaly", "data.data_dir={data}", "classes=[11]"), "classes: 11 is not a class of MNIST (its classes: 0, 1, 2"),
    (("autoencoder.anomaly", "data.data_dir={data}", "data=fashion_mnist", "classes=[boots]"), "classes: 'boots' is not a class of FashionMNIST"),
    (("autoencoder.encode", "ckpt_path={ckpt}", "data.batch_size=0"), "data.batch_size must be an integer >= 1, got 0"),
    (("autoencoder.study", "data.data_dir={data}", "only=[vae,gan]"), "only: 'gan' is not a model of the study (its models: ae_mixture, sparse,"),
    (("autoencoder.study", 'models.vae=["variant=wae"]'), "models.vae=['variant=wae']: unknown variant option 'wae' (allowed: ae, contractive, iwae,"),
    (("autoencoder.sample",), "Missing mandatory value: ckpt_path"),
    (("autoencoder.sample", "ckpt_path={tmp}/missing.ckpt"), "ckpt_path {tmp}/missing.ckpt does not exist"),
    (("autoencoder.sample", "ckpt_path={tmp}/notes.ckpt"), "ckpt_path {tmp}/notes.ckpt is not a Lightning checkpoint this framework wrote"),
    (("autoencoder.sample", "ckpt_path={ckpt}", "num_samples=0"), "num_samples must be an integer >= 1, got 0"),
    (("autoencoder.sample", "ckpt_path={ckpt}", "pairs=0"), "pairs must be an integer >= 1, got 0"),
    (("autoencoder.sample", "ckpt_path={ckpt}", "source=model"), "source=model: the Plain variant has no prior of its own; source=auto or source=mixture fits"),
    (("autoencoder.sample", "ckpt_path={ckpt}", "components=0"), "components must be an integer >= 1, got 0"),
    (("autoencoder.sample", "ckpt_path={ckpt}", "covariance=tied"), "covariance must be one of full, diag, got 'tied'"),
    (("autoencoder.sample", "ckpt_path={ckpt}", "fit_size=0"), "fit_size must be an integer >= 1 or null, got 0"),
    (("autoencoder.sample", "ckpt_path={ckpt}", "steps=1"), "steps must be an integer >= 2, got 1"),
    (("autoencoder.sample", "ckpt_path={ckpt}", "split=validation"), "split must be one of train, val, test, got 'validation'"),
    (("autoencoder.sample", "ckpt_path={ckpt}", "pairs=31"), "pairs=31 needs 62 distinct images, but the test split has 60; ask for at most 30 pairs"),
    (("autoencoder.summarize", "{tmp}/nowhere"), "sweep folder {tmp}/nowhere does not exist"),
    (("autoencoder.bench", "epochs=1"), "epochs must be an integer >= 2, got 1"),
    (("autoencoder.time_to_quality", "seeds=[1,1]"), "seeds must be a non-empty list of distinct integers in [0, 4294967295], got [1, 1]"),
    (("autoencoder.shapes", "model.latent_dim=0"), "model.latent_dim must be an integer >= 1, got 0"),
]


@pytest.fixture
def run_in_process(monkeypatch, capfd):
    """`python -m <module> args` run as its console script, in this process: a process of its own
    for each case below would start Python, torch and Lightning anew, about ten times the case's
    own work (other tests run commands in processes of their own). What a command changes in the
    process comes back afterwards: the working folder, environment, logging, torch's threads and
    Hydra's global state. An exception that the command lets through (a traceback, in a process of
    its own) fails the test."""
    threads, loggers = torch.get_num_threads(), logging_state()
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    for name in ("HYDRA_FULL_ERROR", "PL_GLOBAL_SEED", "PL_SEED_WORKERS"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str, cwd, env) -> SimpleNamespace:
        monkeypatch.chdir(cwd)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "argv", list(args))
        capfd.readouterr()
        try:
            importlib.import_module(args[0]).main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capfd.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    yield run
    GlobalHydra.instance().clear()
    restore_logging(loggers)
    torch.set_num_threads(threads)


def logging_state() -> dict[str, tuple]:
    """Each logger's handlers, level, propagation and whether it is disabled (Hydra's logging
    config disables the loggers it does not name)."""
    named = [logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    return {logger.name: (logger.handlers[:], logger.level, logger.propagate, logger.disabled) for logger in [logging.getLogger(), *named]}


def restore_logging(state: dict[str, tuple]) -> None:
    """Loggers as `logging_state` found them; those made since (by a module imported since) are
    left as their module set them up, and enabled."""
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        if not isinstance(logger, logging.Logger):
            continue
        if logger.name not in state:
            logger.disabled = False
            continue
        handlers, level, propagate, disabled = state[logger.name]
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:], logger.level, logger.propagate, logger.disabled = handlers, level, propagate, disabled


@pytest.mark.parametrize("args, message", BAD_INPUTS, ids=[" ".join(a[:1] + a[6:] if a[0] == "autoencoder.train" else a) for a, _ in BAD_INPUTS])
def test_bad_input_gives_one_line_and_leaves_earlier_outputs_alone(request, tmp_path, fake_mnist, trained_checkpoint, run_in_process, args, message):
    names = bad_inputs_setup(tmp_path, fake_mnist, trained_checkpoint)
    if any("{vq_ckpt}" in a for a in args):  # trained only for the rows that need it
        names["vq_ckpt"] = str(request.getfixturevalue("vq_checkpoint"))
    checkpoint_bytes = trained_checkpoint.read_bytes()
    offline = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "AUTOENCODER_DATA_DIR": str(fake_mnist)}
    result = run_in_process(*(a.format(**names) for a in args), cwd=tmp_path, env=offline)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and len(errors) == 1 and message.format(**names) in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert (tmp_path / "outputs" / "earlier" / "metrics.json").read_text() == '{"test_loss": 0.01}\n'
    assert trained_checkpoint.read_bytes() == checkpoint_bytes
    assert (tmp_path / "finished" / "metrics.json").read_bytes() == (trained_checkpoint.parent.parent / "metrics.json").read_bytes()
