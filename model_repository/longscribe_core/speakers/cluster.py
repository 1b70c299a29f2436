"""Voices -> speakers: agglomerative clustering on cosine distance, in memory that does not grow with n².

Average-linkage clustering needs every pairwise distance: 24,000 voices (10 h
at one per 1.5 s) would be 2.3 GB of them. Past MAX_DIRECT voices, k-means
(in blocks, so memory stays linear) first reduces them to MAX_DIRECT
representatives, the representatives are clustered, and every voice takes its
representative's speaker. The count of speakers is where the dendrogram's
merges pass DISTANCE_THRESHOLD, unless the caller fixes or bounds it.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

MAX_SPEAKERS = 32
MAX_DIRECT = 1500  # voices clustered directly: 1500² / 2 distances = 9 MB
KMEANS_ROUNDS = 12
BLOCK = 4096  # voices per block of the k-means assignment: BLOCK x MAX_DIRECT floats at a time
# Cosine distance at which two groups of voices are taken for two speakers (average linkage). Set on
# measured conversations (tests/conversations.py, bench.speakers): GE2E voices of one speaker in
# 1.6 s windows lie about 0.1-0.25 from their centroid, different speakers' centroids 0.35 and more apart.
DISTANCE_THRESHOLD = 0.5
# A cluster holding less than this share of the speech (and less than MIN_SPEAKER_S) is taken for
# stray windows of another speaker (laughter, overlap, noise) and joins its nearest cluster.
MIN_SPEAKER_SHARE = 0.02
MIN_SPEAKER_S = 4.0


def check_bounds(num_speakers: int | None, min_speakers: int | None, max_speakers: int | None) -> None:
    """ValueError for a count or bounds that cannot hold: below 1, above MAX_SPEAKERS, or min > max."""
    for name, value in (("num_speakers", num_speakers), ("min_speakers", min_speakers), ("max_speakers", max_speakers)):
        if value is not None and not 1 <= value <= MAX_SPEAKERS:
            raise ValueError(f"{name} must be between 1 and {MAX_SPEAKERS}, got {value}")
    if min_speakers is not None and max_speakers is not None and min_speakers > max_speakers:
        raise ValueError(f"min_speakers ({min_speakers}) is above max_speakers ({max_speakers})")


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of each point's most similar centre, computed in blocks (memory BLOCK x len(centres))."""
    out = np.empty(len(points), dtype=np.int64)
    for lo in range(0, len(points), BLOCK):
        out[lo : lo + BLOCK] = np.argmax(points[lo : lo + BLOCK] @ centres.T, axis=1)
    return out


def representatives(points: np.ndarray, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spherical k-means: (centres [k', d], each point's centre [n], each centre's weight [k'])."""
    # evenly spaced seeds in time order: deterministic, and every stretch of the recording is represented
    centres = points[np.linspace(0, len(points) - 1, k).astype(np.int64)].copy()
    owner = _nearest(points, centres)
    for _ in range(KMEANS_ROUNDS):
        sums = np.zeros_like(centres)
        np.add.at(sums, owner, points * weights[:, None])
        used = np.bincount(owner, minlength=len(centres)) > 0
        centres = np.where(used[:, None], _unit(sums), centres)  # an emptied centre stays where it was
        moved = _nearest(points, centres)
        if np.array_equal(moved, owner):
            break
        owner = moved
    mass = np.bincount(owner, weights=weights, minlength=len(centres))
    keep = mass > 0
    remap = np.cumsum(keep) - 1
    return centres[keep], remap[owner], mass[keep]


def _cut(tree: np.ndarray, n: int, count: int | None, lo: int, hi: int) -> np.ndarray:
    """Flat clusters from the dendrogram: `count` of them, else at the threshold within [lo, hi]."""
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    if count is None:
        found = fcluster(tree, t=DISTANCE_THRESHOLD, criterion="distance")
        count = int(found.max())
        if lo <= count <= hi:
            return found - 1
        count = min(max(count, lo), hi)
    return fcluster(tree, t=min(count, n), criterion="maxclust") - 1


def _absorb_small(centres: np.ndarray, labels: np.ndarray, mass: np.ndarray, keep_at_least: int) -> np.ndarray:
    """Clusters too small to be a speaker join their nearest cluster (while more than keep_at_least remain)."""
    total = float(mass.sum())
    while True:
        k = int(labels.max()) + 1
        weight = np.bincount(labels, weights=mass, minlength=k)
        small = [c for c in np.argsort(weight) if weight[c] < MIN_SPEAKER_SHARE * total and weight[c] < MIN_SPEAKER_S]
        if k <= keep_at_least or not small:
            return labels
        c = int(small[0])
        means = _unit(np.stack([(centres[labels == j] * mass[labels == j, None]).sum(axis=0) for j in range(k)]))
        similarity = means @ means[c]
        similarity[c] = -np.inf
        target = int(np.argmax(similarity))
        labels = np.where(labels == c, target, labels)
        labels = np.unique(labels, return_inverse=True)[1]


def _by_first_appearance(labels: np.ndarray) -> np.ndarray:
    """Renumber so speaker 0 speaks first, 1 next, and so on."""
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)  # old labels in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[np.unique(labels, return_inverse=True)[1]]


def cluster_voices(
    embeddings: np.ndarray,
    *,
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    durations: np.ndarray | None = None,
) -> np.ndarray:
    """Embeddings [n, d] in time order -> speaker labels [n], 0..k-1 numbered by first appearance.

    `num_speakers` fixes the count; `min_speakers`/`max_speakers` bound the
    count found (all at most MAX_SPEAKERS, and never more than the voices).
    `durations` [n] (seconds of speech each voice stands for) weigh the
    representatives and the small-cluster rule; omitted, each voice counts 1 s.
    """
    check_bounds(num_speakers, min_speakers, max_speakers)
    points = _unit(np.asarray(embeddings, dtype=np.float32))
    n = len(points)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    weights = np.ones(n, dtype=np.float32) if durations is None else np.asarray(durations, dtype=np.float32)
    if n > MAX_DIRECT:
        centres, owner, mass = representatives(points, weights, MAX_DIRECT)
    else:
        centres, owner, mass = points, np.arange(n), weights.astype(np.float64)
    m = len(centres)
    lo = min(num_speakers or min_speakers or 1, m)
    hi = min(num_speakers or max_speakers or MAX_SPEAKERS, m)
    tree = linkage(centres.astype(np.float64), method="average", metric="cosine") if m > 1 else np.zeros((0, 4))
    labels = _cut(tree, m, num_speakers, lo, hi)
    labels = np.unique(labels, return_inverse=True)[1]
    if num_speakers is None:
        labels = _absorb_small(centres, labels, mass, max(lo, 1))
    return _by_first_appearance(labels[owner])


def centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each speaker's mean embedding, L2-normalised: [k, d] for labels 0..k-1."""
    points = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1 if len(labels) else 0
    sums = np.zeros((k, points.shape[1] if points.ndim == 2 else 0))
    np.add.at(sums, labels, points)
    return _unit(sums)
