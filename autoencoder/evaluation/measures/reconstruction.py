"""Reconstruction of clean test images: MSE, BCE, PSNR and SSIM, and the MSE of each class."""

import logging

import torch.nn.functional as F

from autoencoder.evaluation.batched import in_batches
from autoencoder.evaluation.measures.base import Measure, Outcome, Subject
from autoencoder.evaluation.metrics import per_image_mse, psnr, ssim
from autoencoder.utils.progress import Counted
from autoencoder.utils.tables import markdown_table

log = logging.getLogger(__name__)


class Reconstruction(Measure):
    """How close the network's output is to its clean input; the MSE of each class (by name) says
    which classes it reconstructs worst."""

    def measure(self, subject: Subject, steps: Counted) -> Outcome:
        clean, labels = subject.split("test")
        recon = in_batches(subject.module.decode, subject.codes, subject.batch_size)  # (N, C, H, W)
        errors = per_image_mse(recon, clean)  # (N,)
        result = {
            "mse": float(F.mse_loss(recon, clean)),
            "bce": float(F.binary_cross_entropy(recon.clamp(1e-7, 1 - 1e-7), clean)),
            "psnr_db": float(psnr(recon, clean).mean()),
            "ssim": ssim(recon, clean),
            "mse_per_class": {name: float(errors[labels == c].mean()) for c, name in enumerate(subject.names) if (labels == c).any()},
        }
        log.info("reconstruction: test MSE %.5f, BCE %.4f, PSNR %.2f dB, SSIM %.4f", result["mse"], result["bce"], result["psnr_db"], result["ssim"])
        per_class = result["mse_per_class"]
        return Outcome(
            result=result,
            tables=[
                markdown_table(
                    ["test MSE", "test BCE", "test PSNR (dB)", "test SSIM"],
                    [[f"{result['mse']:.5f}", f"{result['bce']:.4f}", f"{result['psnr_db']:.2f}", f"{result['ssim']:.4f}"]],
                ),
                markdown_table(["class", *per_class], [["test MSE", *(f"{v:.5f}" for v in per_class.values())]]),
            ],
            scalars={
                **{f"reconstruction/{key}": result[key] for key in ("mse", "bce", "psnr_db", "ssim")},
                **{f"reconstruction/mse_per_class/{name}": value for name, value in per_class.items()},
            },
            headline={"test_mse": result["mse"]},
        )
