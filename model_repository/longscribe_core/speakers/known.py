"""Clusters named after enrolled voices: a reference clip's embedding matched to a cluster's centroid."""

from __future__ import annotations

import numpy as np


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def match_known(centroids: np.ndarray, references: dict[str, np.ndarray], threshold: float) -> dict[int, str]:
    """Cluster index -> enrolled name, for clusters whose centroid is like a reference voice.

    `centroids` [k, d]; each reference is one embedding [d] or several [m, d]
    (averaged). A pair counts when its cosine similarity is above `threshold`;
    pairs are taken best first, so each cluster gets one name and each name
    one cluster, and the closest pair wins a contested name.
    """
    if not references or len(centroids) == 0:
        return {}
    names = list(references)
    refs = np.stack([_unit(np.atleast_2d(np.asarray(references[n], dtype=np.float64)).mean(axis=0)) for n in names])
    similarity = _unit(np.asarray(centroids, dtype=np.float64)) @ refs.T  # [k, names]
    named: dict[int, str] = {}
    taken: set[int] = set()
    for flat in np.argsort(-similarity, axis=None, kind="stable"):
        cluster, ref = divmod(int(flat), len(names))
        if similarity[cluster, ref] <= threshold:
            break
        if cluster not in named and ref not in taken:
            named[cluster] = names[ref]
            taken.add(ref)
    return named
