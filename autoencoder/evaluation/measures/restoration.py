"""Restoration of transformed test images, for a model trained on a transformation corruption
(`corruption=rotation`, flip, ...): each test image under every transformation of the model's set,
the PSNR of the transformed image and of the model's restoration, both against the image itself.
The denoising table's counterpart: there is no classical filter to compare with, since undoing a
rotation needs to know which way is up."""

import logging
import statistics

import torch

from autoencoder.evaluation.batched import in_batches
from autoencoder.evaluation.measures.base import Measure, Outcome, Subject
from autoencoder.evaluation.metrics import psnr
from autoencoder.evaluation.scores import transformed
from autoencoder.models.corruption import Transformations
from autoencoder.utils.progress import Counted
from autoencoder.utils.tables import markdown_table

log = logging.getLogger(__name__)


class Restoration(Measure):
    """One row per transformation of the set, averaged over the test images, and the mean over the
    transformations that change an image (the identity's input PSNR would be infinite: shown `-`)."""

    def applies(self, subject: Subject) -> bool:
        return isinstance(subject.module.corruption, Transformations)

    def measure(self, subject: Subject, steps: Counted) -> Outcome:
        clean = subject.split("test")[0]
        module = subject.module
        rows = []
        for k, name in enumerate(module.corruption.names):
            inputs = transformed(module, clean, k)  # (N, C, H, W), no noise
            restored = in_batches(module, inputs, subject.batch_size)
            identity = torch.equal(inputs, clean)
            rows.append(
                {
                    "transformation": name,
                    "psnr_transformed_db": None if identity else float(psnr(inputs, clean).mean()),
                    "psnr_restored_db": float(psnr(restored, clean).mean()),
                }
            )
        changed = [r for r in rows if r["psnr_transformed_db"] is not None]
        mean = {key: statistics.mean(r[key] for r in changed) for key in ("psnr_transformed_db", "psnr_restored_db")} if changed else {}
        if mean:
            rows.append({"transformation": "mean (changed images)", **mean})
            log.info("restoration: test PSNR of the transformed input %.2f dB, restored %.2f dB", mean["psnr_transformed_db"], mean["psnr_restored_db"])
        cells = (
            [r["transformation"], "-" if r["psnr_transformed_db"] is None else f"{r['psnr_transformed_db']:.2f}", f"{r['psnr_restored_db']:.2f}"] for r in rows
        )
        table = markdown_table(["transformation", "transformed input PSNR (dB)", "restored PSNR (dB)"], cells)
        return Outcome(
            result=rows,
            tables=[table],
            scalars={f"restoration/psnr_restored_db/{r['transformation']}": r["psnr_restored_db"] for r in rows},
            headline={"restoration_psnr": mean["psnr_restored_db"]} if mean else {},
        )
