"""The latent space drawn: a scatter of the test codes coloured by class (PCA above 2 dimensions), a
t-SNE map on request, for a 2-D latent the images decoded over its range, and TensorBoard's
embedding projector with image sprites."""

from typing import Annotated

import torch
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from torchvision.utils import make_grid

from autoencoder.config.validation import integer
from autoencoder.evaluation.batched import in_batches
from autoencoder.evaluation.measures.base import Embedding, Measure, Outcome, Subject
from autoencoder.models.module import LitAutoencoder
from autoencoder.utils.figures import latent_scatter
from autoencoder.utils.progress import Counted


def manifold(module: LitAutoencoder, codes: torch.Tensor, steps: int) -> torch.Tensor:
    """Images decoded from a steps x steps grid spanning the 1st-99th percentile of 2-D codes."""
    low, high = torch.quantile(codes, 0.01, dim=0), torch.quantile(codes, 0.99, dim=0)
    ys, xs = torch.linspace(high[1], low[1], steps), torch.linspace(low[0], high[0], steps)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1).flip(-1).reshape(-1, 2)  # (steps * steps, 2), top row first
    return make_grid(in_batches(module.decode, grid), nrow=steps, padding=0)


class Latent(Measure):
    """Figures, no numbers. `tsne` adds a t-SNE map of the first `tsne_points` codes, `projector_points` test
    images go to the projector, and a 2-D latent's manifold has `manifold_steps` per axis."""

    def __init__(
        self,
        tsne: bool = False,
        tsne_points: Annotated[int, integer(2)] = 3000,
        projector_points: Annotated[int, integer(1)] = 2000,
        manifold_steps: Annotated[int, integer(2)] = 20,
    ) -> None:
        self.tsne, self.tsne_points, self.projector_points, self.manifold_steps = tsne, tsne_points, projector_points, manifold_steps

    def measure(self, subject: Subject, steps: Counted) -> Outcome:
        codes, (images, labels), names = subject.codes, subject.split("test"), subject.names
        dims = codes.shape[1]
        if dims == 2:
            figures = {"latent": latent_scatter(codes, labels, "test latent space", names), "manifold": manifold(subject.module, codes, self.manifold_steps)}
        else:
            pca = PCA(2, random_state=subject.seed).fit(codes.numpy())
            mapped = torch.from_numpy(pca.transform(codes.numpy()))  # (N, 2)
            figures = {"latent": latent_scatter(mapped, labels, f"test latent space ({dims} dims), PCA", names, ("PC 1", "PC 2"))}
        if self.tsne:
            n = min(self.tsne_points, len(codes))
            embedded = torch.from_numpy(TSNE(2, init="pca", random_state=subject.seed).fit_transform(codes[:n].numpy()))  # (n, 2)
            figures["latent_tsne"] = latent_scatter(embedded, labels[:n], f"test latent space ({dims} dims), t-SNE of {n} codes", names, ("t-SNE 1", "t-SNE 2"))
        n = min(self.projector_points, len(codes))
        projector = Embedding(codes[:n], [names[c] for c in labels[:n].tolist()], images[:n])
        return Outcome(figures=figures, embeddings={"test_latent": projector})
