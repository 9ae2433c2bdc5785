"""What conditional instance norm learned (Dumoulin, Shlens & Kudlur, A Learned Representation for
Artistic Style, 2017): each style is its gamma/beta vectors; PCA shows them in 2-D, and a blend of
styles, being the same weighted sum of those vectors, lands on the same map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA

from training.networks import StyleNet


def style_vectors(net: StyleNet) -> torch.Tensor:
    """[S, D]: per style, every conditional instance norm's gamma then beta, concatenated."""
    parts = [torch.cat([norm.gamma, norm.beta], dim=1) for norm in net.norms()]
    return torch.cat(parts, dim=1).detach().cpu()


@dataclass(frozen=True)
class NormMap:
    styles: np.ndarray  # [S,2]
    blends: np.ndarray  # [B,2]
    explained: tuple[float, float]  # variance ratio of the two axes


def norm_map(net: StyleNet, blends: torch.Tensor) -> NormMap:
    """PCA of the styles' norm vectors; ``blends`` [B,S] (rows of non-negative weights) placed on it."""
    vectors = style_vectors(net).numpy()
    if len(vectors) < 3:
        raise ValueError("a 2-D map of the styles needs at least 3 styles")
    pca = PCA(n_components=2).fit(vectors)
    mixed = blends.float().numpy() @ vectors
    ratio = pca.explained_variance_ratio_
    return NormMap(pca.transform(vectors), pca.transform(mixed), (float(ratio[0]), float(ratio[1])))
