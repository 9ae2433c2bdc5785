"""2-D maps of a photo set's feature vectors: PCA and t-SNE (van der Maaten & Hinton 2008), scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

METHODS = ("pca", "tsne")

# Coarse groups of the ILSVRC2012 classes by index range (the classes are ordered by WordNet id).
GROUPS = (
    ((151, 268), "dogs"),
    ((7, 24), "birds"),
    ((80, 100), "birds"),
    ((127, 146), "birds"),
    ((0, 150), "other animals"),
    ((269, 397), "other animals"),
    ((924, 969), "food"),
    ((970, 980), "landscapes"),
)


def coarse_group(index: int) -> str:
    """A coarse label for an ImageNet class index: dogs, birds, other animals, food, landscapes, objects."""
    for (lo, hi), name in GROUPS:
        if lo <= index <= hi:
            return name
    return "objects"


def project(features: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """[N,D] -> [N,2]."""
    if method not in METHODS:
        raise ValueError(f"unknown embedding {method!r}; choose from {', '.join(METHODS)}")
    if len(features) < 3:
        raise ValueError("an embedding needs at least 3 vectors")
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(features)
    perplexity = min(30.0, (len(features) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)
