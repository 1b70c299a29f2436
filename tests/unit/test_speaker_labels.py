"""Speakers onto the transcript: words to the voice heard most, segments split where the speaker changes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from longscribe_core.segments import ChunkResult, Join, Segment, Voice, Word, decode_result, encode_result
from longscribe_core.speakers import label_segments, speaker_name

EMBEDDING = tuple([1.0] + [0.0] * 255)


def voice(start: float, end: float) -> Voice:
    return Voice(start, end, EMBEDDING)


def words(*spans: tuple[float, float, str]) -> tuple[Word, ...]:
    return tuple(Word(a, b, f" {text}", 0.9) for a, b, text in spans)


def segment(ws: tuple[Word, ...], join: Join | None = None) -> Segment:
    return Segment(ws[0].start_s, ws[-1].end_s, "".join(w.text for w in ws).strip(), words=ws, join=join or Join())


def test_speakers_are_named_by_number() -> None:
    assert speaker_name(0) == "SPEAKER_00" and speaker_name(12) == "SPEAKER_12"


def test_a_segment_two_speakers_share_is_split_at_the_word_where_the_speaker_changes() -> None:
    ws = words((0.0, 0.4, "Hello"), (0.5, 0.9, "there."), (1.7, 2.0, "Hi,"), (2.1, 2.6, "you."))
    voices = [voice(0.0, 1.2), voice(1.5, 2.8)]
    out = label_segments([segment(ws, Join("chunk", 2, 1, False, 0.3))], voices, [0, 1])
    assert [(s.text, s.speaker) for s in out] == [("Hello there.", "SPEAKER_00"), ("Hi, you.", "SPEAKER_01")]
    assert out[0].start_s == 0.0 and out[0].end_s == 0.9 and out[1].start_s == 1.7 and out[1].end_s == 2.6
    assert all(w.speaker == s.speaker for s in out for w in s.words)
    assert out[0].join.kind == "chunk", "the first part keeps the segment's join"
    assert out[1].join.kind == "segment" and abs(out[1].join.gap_s - 0.8) < 1e-9


def test_a_word_takes_the_speaker_who_covers_it_longest() -> None:
    ws = words((1.0, 2.0, "long"))
    out = label_segments([segment(ws)], [voice(0.0, 1.3), voice(1.3, 3.0)], [0, 1])
    assert out[0].speaker == "SPEAKER_01" and out[0].words[0].speaker == "SPEAKER_01"


def test_a_word_no_voice_covers_takes_the_nearest_voice() -> None:
    ws = words((5.0, 5.2, "Yes."))
    out = label_segments([segment(ws)], [voice(0.0, 1.6), voice(5.6, 7.2), voice(9.0, 10.6)], [0, 1, 0])
    assert out[0].speaker == "SPEAKER_01"
    late = label_segments([segment(words((20.0, 20.3, "Bye.")))], [voice(0.0, 1.6), voice(9.0, 10.6)], [1, 0])
    assert late[0].speaker == "SPEAKER_00"


def test_a_segment_without_words_is_labelled_whole_by_overlap() -> None:
    plain = Segment(1.0, 4.0, "No words aligned here.")
    out = label_segments([plain], [voice(0.0, 1.5), voice(1.5, 4.5)], [0, 1])
    assert len(out) == 1 and out[0].speaker == "SPEAKER_01" and out[0].text == plain.text


def test_without_voices_nothing_is_labelled() -> None:
    seg = segment(words((0.0, 0.5, "Hi.")))
    assert label_segments([seg], [], []) == [seg]


@settings(max_examples=60, deadline=None)
@given(
    changes=st.lists(st.floats(0.5, 29.5), max_size=6),
    word_starts=st.lists(st.floats(0.0, 29.0), min_size=1, max_size=30, unique=True),
    cut=st.integers(0, 30),
)
def test_no_segment_spans_two_speakers_and_no_word_is_lost(
    changes: list[float], word_starts: list[float], cut: int
) -> None:
    edges = [0.0, *sorted(changes), 30.0]
    voices = [voice(a, b) for a, b in zip(edges, edges[1:]) if b > a]
    labels = [i % 3 for i in range(len(voices))]
    ws = tuple(Word(t, t + 0.3, f" w{i}", 0.9) for i, t in enumerate(sorted(word_starts)))
    cut = min(cut, len(ws) - 1)
    segments = [segment(part) for part in (ws[:cut], ws[cut:]) if part]
    out = label_segments(segments, voices, labels)
    assert [w.text for s in out for w in s.words] == [w.text for w in ws]
    for s in out:
        assert s.speaker is not None and {w.speaker for w in s.words} == {s.speaker}
        assert s.start_s <= s.words[0].start_s and s.words[-1].end_s <= s.end_s + 1e-9


def test_speakers_and_voices_survive_the_wire() -> None:
    vec = np.random.default_rng(0).random(256)
    vec /= np.linalg.norm(vec)
    v = Voice(1.25, 2.85, tuple(float(x) for x in vec))
    ws = (Word(1.3, 1.6, " Hi", 0.9, speaker="SPEAKER_01"),)
    seg = Segment(1.3, 1.6, "Hi", words=ws, speaker="SPEAKER_01")
    back = decode_result(encode_result(ChunkResult((seg,), "en", voices=(v, v.shifted(10.0)))))
    assert back.segments[0].speaker == "SPEAKER_01" and back.segments[0].words[0].speaker == "SPEAKER_01"
    assert [(x.start_s, x.end_s) for x in back.voices] == [(1.25, 2.85), (11.25, 12.85)]
    # float16 on the wire: a cosine similarity moves by far less than what tells two speakers apart
    assert float(np.dot(back.voices[0].embedding, vec)) > 0.9999


def test_payloads_without_speakers_or_voices_decode_and_stay_small() -> None:
    old = b'{"language": "en", "segments": [{"start_s": 0, "end_s": 1, "text": "x", "words": [{"start_s": 0, "end_s": 1, "text": " x", "probability": 0.5}]}]}'  # noqa: E501
    result = decode_result(old)
    assert result.voices == () and result.segments[0].speaker is None and result.segments[0].words[0].speaker is None
    wire = encode_result(result)
    assert b"speaker" not in wire and b"voices" not in wire, "an undiarized transcript carries no speaker fields"
