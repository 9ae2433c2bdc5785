"""Nearest neighbours in pixel space and in feature space (Krizhevsky et al. 2012, figure 4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixel_vectors(images: torch.Tensor, side: int = 32) -> torch.Tensor:
    """[N,3,H,W] -> [N, 3*side*side]: the images shrunk, as raw pixel vectors."""
    return F.interpolate(images, size=(side, side), mode="bilinear", antialias=True, align_corners=False).flatten(1)


def nearest(
    queries: torch.Tensor, bank: torch.Tensor, k: int, cosine: bool = False, exclude: list[int] | None = None
) -> torch.Tensor:
    """[Q,k] indices into ``bank`` of each query's k nearest rows (Euclidean, or cosine).

    ``exclude[q]`` is a bank index never returned for query q (the query itself when it is in the bank).
    """
    if cosine:
        queries, bank = F.normalize(queries, dim=1), F.normalize(bank, dim=1)
    distance = torch.cdist(queries, bank)
    if exclude is not None:
        distance[torch.arange(len(queries)), torch.tensor(exclude)] = float("inf")
    return distance.topk(k, largest=False).indices
