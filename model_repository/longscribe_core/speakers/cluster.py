"""Voices -> speakers: agglomerative clustering on cosine distance, in memory that does not grow with n².

Average-linkage clustering needs every pairwise distance: 24,000 voices (10 h
at one per 1.5 s) would be 2.3 GB of them. Past MAX_DIRECT voices, MAX_DIRECT
of them spread evenly in time are clustered (each standing for its share of
the speech), and every voice then goes to the speaker whose centroid it is
nearest, in blocks, so memory stays linear. A sample of voices, not k-means
centres: averaged centres lie closer together than single voices do, and the
threshold below was measured on single voices. The count of speakers is where
the dendrogram's merges pass DISTANCE_THRESHOLD, unless the caller fixes or
bounds it. (A speaker heard for under about n / MAX_DIRECT voices in a very
long recording may be sampled too thinly to count as a speaker of their own.)
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

MAX_SPEAKERS = 32
MAX_DIRECT = 1500  # voices clustered directly: 1500² / 2 distances = 9 MB
BLOCK = 4096  # voices per block when each is given its nearest speaker
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
    """Index of each point's most similar centre (unit `centres`), in blocks converted to float32 one at a
    time (memory BLOCK x the dimension): a point's length scales all its similarities alike, so its argmax
    needs no normalising."""
    out = np.empty(len(points), dtype=np.int64)
    for lo in range(0, len(points), BLOCK):
        out[lo : lo + BLOCK] = np.argmax(points[lo : lo + BLOCK].astype(np.float32) @ centres.T, axis=1)
    return out


def sample(n: int, k: int) -> np.ndarray:
    """k indices spread evenly over n voices in time order: every stretch of the recording has a say."""
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


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
    # as given (the orchestrator's float16 voices stay float16): only the sample is copied and normalised, and
    # every voice is read in blocks, so a 10-hour recording's 15,000 voices are never copied whole
    points = np.asarray(embeddings)
    n = len(points)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    weights = np.ones(n, dtype=np.float64) if durations is None else np.asarray(durations, dtype=np.float64)
    if n <= MAX_DIRECT:
        unit = _unit(points.astype(np.float32))
        return _by_first_appearance(_cluster(unit, weights, num_speakers, min_speakers, max_speakers))
    chosen = sample(n, MAX_DIRECT)
    sampled = _unit(points[chosen].astype(np.float32))
    share = weights.sum() / weights[chosen].sum()  # each sampled voice stands for its share of the speech
    labels = _cluster(sampled, weights[chosen] * share, num_speakers, min_speakers, max_speakers)
    return _by_first_appearance(_nearest(points, centroids(sampled, labels).astype(np.float32)))


def _cluster(
    points: np.ndarray, mass: np.ndarray, num_speakers: int | None, min_speakers: int | None, max_speakers: int | None
) -> np.ndarray:
    """Average-linkage clusters of at most MAX_DIRECT unit vectors, labels 0..k-1 in any order."""
    m = len(points)
    lo = min(num_speakers or min_speakers or 1, m)
    hi = min(num_speakers or max_speakers or MAX_SPEAKERS, m)
    tree = linkage(points.astype(np.float64), method="average", metric="cosine") if m > 1 else np.zeros((0, 4))
    labels = np.unique(_cut(tree, m, num_speakers, lo, hi), return_inverse=True)[1]
    if num_speakers is None:
        labels = _absorb_small(points, labels, mass, max(lo, 1))
    return labels


def centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each speaker's mean embedding, L2-normalised: [k, d] for labels 0..k-1; summed in float64 blocks
    (every voice of hours, in float16, is not copied whole)."""
    points = np.asarray(embeddings)
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max()) + 1 if len(labels) else 0
    sums = np.zeros((k, points.shape[1] if points.ndim == 2 else 0))
    for lo in range(0, len(points), BLOCK):
        np.add.at(sums, labels[lo : lo + BLOCK], points[lo : lo + BLOCK].astype(np.float64))
    return _unit(sums)
