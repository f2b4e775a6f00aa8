"""Denoising against classical filters: for each corruption and noise level, the test PSNR of the
corrupted input, of the best classical filter (Gaussian blur or median, picked with its width on
validation images) and of the autoencoder's output."""

import logging
from typing import Annotated

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from scipy import ndimage

from autoencoder import CONFIG_DIR
from autoencoder.config.validation import CORRUPTIONS, integer, numbers, strings
from autoencoder.evaluation.batched import in_batches
from autoencoder.evaluation.measures.base import Measure, Outcome, Subject
from autoencoder.evaluation.metrics import psnr
from autoencoder.utils.figures import psnr_plot
from autoencoder.utils.progress import Counted
from autoencoder.utils.tables import markdown_table

log = logging.getLogger(__name__)

# Classical denoisers tried on validation images; the best one per corruption and noise is used.
FILTERS = {
    **{f"gaussian blur sigma={s}": (ndimage.gaussian_filter, {"sigma": (0, 0, s, s)}) for s in (0.5, 0.75, 1.0, 1.5, 2.0)},
    **{f"median {k}x{k}": (ndimage.median_filter, {"size": (1, 1, k, k)}) for k in (3, 5)},
}


def classical_filter(name: str, images: torch.Tensor) -> torch.Tensor:
    function, kwargs = FILTERS[name]
    return torch.from_numpy(function(images.numpy(), **kwargs))


def corruption(name: str, noise: float) -> torch.nn.Module:
    """The corruption `conf/corruption/<name>.yaml` describes, at the given noise."""
    return instantiate(OmegaConf.load(CONFIG_DIR / "corruption" / f"{name}.yaml"), noise=noise)


class Denoising(Measure):
    """One row per corruption in `corruptions` and level in `noise`, each a progress step; the filter
    is picked on the first `tuning_images` validation images."""

    def __init__(
        self,
        corruptions: Annotated[list[str], strings(options=CORRUPTIONS)] = ("gaussian", "masking", "salt_pepper"),
        noise: Annotated[list[float], numbers(0)] = (0.1, 0.2, 0.3, 0.4, 0.5),
        tuning_images: Annotated[int, integer(1)] = 1000,
    ) -> None:
        self.corruptions, self.noise, self.tuning_images = list(corruptions), list(noise), tuning_images

    def steps(self, subject: Subject) -> int:
        return len(self.corruptions) * len(self.noise)

    def measure(self, subject: Subject, steps: Counted) -> Outcome:
        val_clean, test_clean = subject.split("val")[0][: self.tuning_images], subject.split("test")[0]
        rows = []
        for name in self.corruptions:
            for noise in self.noise:
                corrupt = corruption(name, noise)
                generator = torch.Generator().manual_seed(subject.seed)
                val_noisy, test_noisy = corrupt(val_clean, generator), corrupt(test_clean, generator)
                best = max(FILTERS, key=lambda f: float(psnr(classical_filter(f, val_noisy), val_clean).mean()))
                row = {
                    "corruption": name,
                    "noise": noise,
                    "psnr_noisy_db": float(psnr(test_noisy, test_clean).mean()),
                    "psnr_filter_db": float(psnr(classical_filter(best, test_noisy), test_clean).mean()),
                    "filter": best,
                    "psnr_autoencoder_db": float(psnr(in_batches(subject.module, test_noisy, subject.batch_size), test_clean).mean()),
                }
                rows.append(row)
                log.info(
                    "denoising %s %.1f: noisy %.2f dB, %s %.2f dB, autoencoder %.2f dB",
                    name,
                    noise,
                    row["psnr_noisy_db"],
                    best,
                    row["psnr_filter_db"],
                    row["psnr_autoencoder_db"],
                )
                steps.advance(note=f"denoising {name} {noise:g}")
        table = markdown_table(
            ["corruption", "noise", "noisy input PSNR", "classical filter PSNR", "filter", "autoencoder PSNR"],
            (
                [r["corruption"], r["noise"], f"{r['psnr_noisy_db']:.2f}", f"{r['psnr_filter_db']:.2f}", r["filter"], f"{r['psnr_autoencoder_db']:.2f}"]
                for r in rows
            ),
        )
        # The headline keeps the row of the README's headline command, when the table has it.
        headline = {
            f"denoising_psnr_{r['corruption']}_{r['noise']}": r["psnr_autoencoder_db"] for r in rows if (r["corruption"], r["noise"]) == ("gaussian", 0.3)
        }
        return Outcome(result=rows, tables=[table], figures={"denoising_psnr": psnr_plot(rows)}, headline=headline)
