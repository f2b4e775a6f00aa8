"""A VAE's likelihood of the test images: the -ELBO and the importance-weighted -log p(x), in nats."""

import logging
from typing import Annotated

from autoencoder.config.validation import integer
from autoencoder.evaluation.likelihood import likelihood
from autoencoder.evaluation.measures.base import Measure, Outcome, Subject
from autoencoder.utils.progress import Counted, Reporter
from autoencoder.utils.tables import markdown_table

log = logging.getLogger(__name__)


class Likelihood(Measure):
    """`samples` importance samples per image, decoded `decodes` at a time (autoencoder.evaluation.likelihood).
    The pass writes its progress to likelihood.partial.pt in the evaluation's folder, so that the
    evaluation started again in that folder goes on where an interrupted pass stopped."""

    def __init__(self, samples: Annotated[int, integer(1)] = 1000, decodes: Annotated[int, integer(1)] = 128) -> None:
        self.samples, self.decodes = samples, decodes

    def applies(self, subject: Subject) -> bool:
        return subject.module.variant.generative  # the other variants define no p(x)

    def measure(self, subject: Subject, steps: Counted) -> Outcome:
        images, partial = subject.split("test")[0], subject.folder / "likelihood.partial.pt"
        result = likelihood(subject.module, images, self.samples, self.decodes, subject.seed, Reporter(**subject.progress), partial)
        log.info("likelihood: -ELBO %.2f nats, -log p(x) %.2f nats (k=%d)", result["negative_elbo_nats"], result["nll_nats"], result["samples"])
        table = markdown_table(
            ["test -ELBO (nats)", f"test -log p(x), k={result['samples']} (nats)"], [[f"{result['negative_elbo_nats']:.2f}", f"{result['nll_nats']:.2f}"]]
        )
        return Outcome(
            result=result,
            tables=[table],
            scalars={f"likelihood/{key}": value for key, value in result.items()},
            headline={key: result[key] for key in ("negative_elbo_nats", "nll_nats")},
        )
