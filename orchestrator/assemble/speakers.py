"""Who spoke when, across the whole recording: voices gathered chunk by chunk, clustered once, put on the
transcript's segments. Pure.

Each chunk's result carries the voices of its speech (`ChunkResult.voices`, kept with the chunk's
checkpoint). The final assembly's first pass gathers them here in media time, compactly (float16, 512
bytes a voice: about 200 KB per hour of speech), keeping each voice once where chunks overlap; they are
clustered once for the whole recording; the second pass labels each segment as it is written
(`longscribe_core.speakers.label_segments`, which splits a segment where the speaker changes). A resumed
job reads the same voices back from its checkpoints, so it finds the same speakers under the same labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from longscribe_core.assembly import TimedText, written_with_spaces
from longscribe_core.segments import Join, Segment, Voice
from longscribe_core.speakers import centroids, cluster_voices, label_segments, match_known, speaker_name
from orchestrator.plan.macro import MacroChunk


@dataclass(frozen=True)
class Bounds:
    """What the request said of the count: fixed, or bounded (all None: found)."""

    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None


@dataclass(frozen=True)
class Diarize:
    """What a request asked of diarization: the count's bounds, and known speakers' reference voices."""

    bounds: Bounds = Bounds()
    references: Mapping[str, NDArray[np.float32]] = field(default_factory=dict)  # name -> embedding [d]
    similarity: float = 0.7  # settings.known_speaker_similarity


@dataclass
class VoiceBook:
    """The voices of one recording in media time, gathered chunk by chunk in media order."""

    times: list[NDArray[Any]] = field(default_factory=list)  # per chunk [n, 2] float64 seconds
    vectors: list[NDArray[Any]] = field(default_factory=list)  # per chunk [n, d] float16, L2-normalised

    def add(self, chunk: MacroChunk, voices: Sequence[Voice], first: bool, last: bool) -> None:
        """A chunk's voices (times from what it read), those whose middle lies in its own span: a voice heard
        by two overlapping chunks is kept once, by the rule that keeps a word once (`Segment.owned_part`)."""
        own_from = -math.inf if first else chunk.start_s
        own_to = math.inf if last else chunk.end_s
        kept = [v.shifted(chunk.offset_s) for v in voices]
        kept = [v for v in kept if own_from <= (v.start_s + v.end_s) / 2 < own_to]
        if kept:
            self.times.append(np.array([(v.start_s, v.end_s) for v in kept], dtype=np.float64))
            self.vectors.append(np.array([v.embedding for v in kept], dtype=np.float16))

    def __len__(self) -> int:
        return sum(len(t) for t in self.times)

    def speakers(self, asked: Diarize) -> Speakers:
        """Cluster every voice at once; a cluster like a reference voice (above `asked.similarity`) takes
        its name."""
        bounds = asked.bounds
        if not self.times:
            return Speakers((), np.zeros(0, dtype=np.int64), {})
        times = np.concatenate(self.times)
        vectors = np.concatenate(self.vectors)  # float16: clustering copies only its sample (cluster_voices)
        labels = cluster_voices(
            vectors,
            num_speakers=bounds.num_speakers,
            min_speakers=bounds.min_speakers,
            max_speakers=bounds.max_speakers,
            durations=times[:, 1] - times[:, 0],
        )
        names: dict[str, str] = {}
        if asked.references:
            known = match_known(centroids(vectors, labels), dict(asked.references), asked.similarity)
            names = {speaker_name(label): name for label, name in known.items()}
        voices = tuple(Voice(float(a), float(b), ()) for a, b in times)  # where each was heard: all labels need
        return Speakers(voices, labels, names)


@dataclass(frozen=True)
class Speakers:
    """The speakers found: each voice's label, and the names of those that matched a known speaker."""

    voices: tuple[Voice, ...]  # in time order, without their embeddings
    labels: NDArray[np.int64]  # [len(voices)] 0..count-1, by first appearance
    names: dict[str, str]  # SPEAKER_01 -> a known speaker's name

    @property
    def count(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def label(self, timed: Sequence[TimedText]) -> list[TimedText]:
        """The segments with their speaker (on `scores`, the segment's model record) and their words',
        split where the speaker changes. Without any voice (no speech long enough to tell one) unchanged.

        One `label_segments` call per batch (it sorts the voices each call: per segment, a 10-hour
        transcript would sort 22,500 voices 10,000 times); each segment's place in the batch rides in its
        join's `piece` through the call, and its own join is put back after."""
        if not self.voices or not timed:
            return list(timed)
        labelled = label_segments([_as_segment(t, i) for i, t in enumerate(timed)], self.voices, self.labels)
        out: list[TimedText] = []
        seen: set[int] = set()
        for s in labelled:
            source = timed[s.join.piece]
            first = s.join.piece not in seen
            seen.add(s.join.piece)
            join = source.join if first else replace(s.join, piece=source.join.piece, chunk=source.join.chunk)
            out.append(_as_timed(source, s, join, self.names))
        return out


def _as_segment(t: TimedText, index: int) -> Segment:
    """The segment `label_segments` reads; words get back the leading space a split joins them with."""
    space = " " if written_with_spaces(t.language) else ""
    words = tuple(replace(w, text=space + w.text) for w in t.words)
    return Segment(t.start_s, t.end_s, t.text, words=words, join=replace(t.join, piece=index))


def _as_timed(t: TimedText, s: Segment, join: Join, names: Mapping[str, str]) -> TimedText:
    speaker = names.get(s.speaker or "", s.speaker)
    words = tuple(replace(w, text=w.text.strip(), speaker=names.get(w.speaker or "", w.speaker)) for w in s.words)
    scores = replace(t.scores if t.scores is not None else Segment(s.start_s, s.end_s, s.text), speaker=speaker)
    return replace(t, start_s=s.start_s, end_s=s.end_s, text=s.text, words=words, scores=scores, join=join)


def speaker_of(t: TimedText) -> str | None:
    """Who said `t`, once labelled (None: not diarized)."""
    return t.scores.speaker if t.scores is not None else None
