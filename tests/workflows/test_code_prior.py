import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from autoencoder.evaluation.measures.generation import Generation
from autoencoder.evaluation.sampling import sample
from autoencoder.models.module import LitAutoencoder
from autoencoder.workflows.code_prior import train_code_prior
from tests.conftest import compose_entry

SMALL_PRIOR = ("epochs=2", "prior.channels=8", "prior.layers=2", "batch_size=64")


@pytest.mark.slow
def test_the_prior_is_written_with_the_vqvae_into_a_new_checkpoint_that_samples_it(vq_checkpoint, fake_mnist, tmp_path):
    ckpt = shutil.copytree(vq_checkpoint.parent.parent, tmp_path / "run") / "checkpoints" / vq_checkpoint.name
    before = ckpt.read_bytes()
    result = train_code_prior(compose_entry("code_prior", tmp_path / "prior", f"ckpt_path={ckpt}", *SMALL_PRIOR), {"data_dir": str(fake_mnist)})
    assert json.loads((tmp_path / "prior" / "code_prior.json").read_text()) == result
    written = Path(result["written"])
    assert written == ckpt.with_name(f"{ckpt.stem}-prior.ckpt") and ckpt.read_bytes() == before  # the old checkpoint is left alone
    assert result["grid"] == [7, 7] and 1 <= len(result["history"]) <= 2

    old, new = (LitAutoencoder.load_from_checkpoint(p, map_location="cpu", weights_only=True).eval() for p in (ckpt, written))
    assert not old.variant.has_prior and new.variant.has_prior and new.variant.prior.codebook_size == 16
    assert torch.equal(old.variant.codebook, new.variant.codebook)
    assert torch.equal(old.net.encoder[0].weight, new.net.encoder[0].weight)
    assert not Generation().applies(SimpleNamespace(module=old)) and Generation().applies(SimpleNamespace(module=new))

    codes = new.variant.sample_prior(new.net, 3, torch.Generator().manual_seed(0))  # (3, 8 * 7 * 7): codebook vectors
    assert codes.shape == (3, 8 * 49) and torch.equal(codes, new.variant.sample_prior(new.net, 3, torch.Generator().manual_seed(0)))
    grid = codes.view(3, 8, 49).transpose(1, 2)  # (3, 49, 8)
    assert torch.isin(grid.flatten(0, 1), new.variant.codebook).all()

    drawn = sample(compose_entry("sample", tmp_path / "sample", f"ckpt_path={written}", "num_samples=4", "pairs=2"), {"data_dir": str(fake_mnist)})
    assert drawn["prior"] == "model" and (tmp_path / "sample" / "prior.png").is_file()
