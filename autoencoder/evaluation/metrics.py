"""The measures the lecture's applications are judged by, each a small function on tensors.

Images are floats in [0, 1], so PSNR uses a peak of 1. Probes and AUROC come from scikit-learn;
SSIM from torchmetrics.
"""

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure


def per_image_mse(images: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of each image: the reconstruction-error score of anomaly detection."""
    return (images.float() - target.float()).square().flatten(1).mean(1)


def relative_error(images: Tensor, target: Tensor) -> Tensor:
    """Squared reconstruction error of each image over the image's own energy, ||x - x'||^2 / ||x||^2:
    an error score that does not favour digits with little ink (a 1 is cheap to get nearly right)."""
    err = (images.float() - target.float()).square().flatten(1).sum(1)
    return err / target.float().square().flatten(1).sum(1).clamp_min(1e-10)


def knn_distance(reference: Tensor, points: Tensor, k: int, exclude_self: bool = False) -> Tensor:
    """Mean Euclidean distance of each point (N, D) to its k nearest reference points (M, D): far
    from every training image or code means unlike them, an anomaly score. `exclude_self`: the
    points are the reference set itself, and each point's zero distance to itself is not counted."""
    skip = int(exclude_self)
    nearest = torch.cat([torch.cdist(chunk, reference).topk(min(k + skip, len(reference)), largest=False).values for chunk in points.split(1000)])
    return nearest[:, skip:].mean(1)  # (N,)


def psnr(images: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio of each image in dB, peak 1: 10 log10(1 / MSE)."""
    return -10 * torch.log10(per_image_mse(images, target).clamp_min(1e-10))


def ssim(images: Tensor, target: Tensor) -> float:
    """Mean structural similarity (Gaussian window 11, sigma 1.5) with data range 1."""
    return float(structural_similarity_index_measure(images.float(), target.float(), data_range=1.0))


def auroc(scores: Tensor, is_anomaly: Tensor) -> float:
    """Area under the ROC curve of `scores` (higher = more anomalous) against the true labels."""
    return float(roc_auc_score(is_anomaly.numpy(), scores.numpy()))


def linear_probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """Test accuracy of a logistic regression fitted on standardised train features."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(probe.fit(train_x, train_y).score(test_x, test_y))


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int = 5) -> float:
    """Test accuracy of k-nearest-neighbour voting (Euclidean) on the raw features."""
    return float(KNeighborsClassifier(n_neighbors=k).fit(train_x, train_y).score(test_x, test_y))
