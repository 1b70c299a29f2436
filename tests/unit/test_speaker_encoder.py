"""The GE2E speaker encoder in numpy: resemblyzer's embeddings, its weights pinned and read without torch."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest

from longscribe_core import weights
from longscribe_core.speakers import checkpoint, encoder, voices

from ..corpus import REPO, decode_pcm

DATA = REPO / "tests" / "data"
# Made once by tests/data/speakers/README.md's recipe: resemblyzer 0.1.4 with torch 2.13 (CPU), librosa 0.11,
# `embed_utterance(normalize_volume(wav, -30, increase_only=True))` on these clips of tests/data
REFERENCE = DATA / "speakers" / "resemblyzer-reference.npz"


def clips() -> list[tuple[str, np.ndarray, np.ndarray]]:
    ref = np.load(REFERENCE)
    out = []
    for vector, name, lo, hi in zip(ref["embeddings"], ref["names"], ref["starts"], ref["ends"]):
        audio = decode_pcm(DATA / str(name)).astype(np.float32) / 32768.0
        out.append((str(name), audio[int(lo) : None if hi < 0 else int(hi)], vector))
    return out


def test_embeddings_match_resemblyzer_and_torch() -> None:
    cases = clips()
    assert len(cases) == 6 and any(len(a) < encoder.PARTIAL_SAMPLES for _, a, _ in cases), "a padded short clip too"
    mine = encoder.embed_batch([audio for _, audio, _ in cases])
    expected = np.stack([v for _, _, v in cases])
    # measured 4.1e-7 at most (float32 rounding): the same network, features and partial scheme
    assert np.abs(mine - expected).max() < 1e-5
    assert np.allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)


def test_a_clip_embeds_the_same_to_the_bit_alone_or_anywhere_in_any_batch() -> None:
    """What a resumed job's labels rest on: the micro chunker's batches depend on what Triton's dynamic batcher
    joins. Before the LSTM ran in passes of one shape, a clip alone and in a batch differed by up to 2.3e-7
    (BLAS rounds a row by the matrix's height and the row's place), enough to move float16 voices."""
    cases = clips()
    audio = [a for _, a, _ in cases]
    speech = decode_pcm(DATA / str(cases[0][0])).astype(np.float32) / 32768.0
    many = audio + [speech[i * 4000 : i * 4000 + encoder.PARTIAL_SAMPLES] for i in range(40)]  # past one pass
    together = encoder.embed_batch(many)
    for i in (0, 3, 5, 7, 38, len(many) - 1):
        assert np.array_equal(encoder.embed(many[i]), together[i]), i
    shifted = encoder.embed_batch(many[9:] + many[:9])  # every clip at another place, other neighbours
    assert np.array_equal(shifted, np.concatenate([together[9:], together[:9]]))


def test_a_shorter_sequence_in_a_batch_keeps_its_state_from_its_last_frame() -> None:
    rng = np.random.default_rng(0)
    mels = rng.random((2, 40, encoder.N_MELS), dtype=np.float32)
    alone = encoder.forward(encoder.network(), mels[:1, :25])
    padded = encoder.forward(encoder.network(), mels, lengths=np.array([25, 40]))
    assert np.abs(alone[0] - padded[0]).max() < 1e-6


def test_two_speakers_are_further_apart_than_one_speaker_with_itself() -> None:
    by_name = {name: audio for name, audio, _ in clips()}
    lj_a = encoder.embed(by_name["ljspeech/LJ001-0002.flac"])
    lj_b = encoder.embed(decode_pcm(DATA / "ljspeech" / "LJ001-0003.flac").astype(np.float32) / 32768.0)
    jfk = encoder.embed(by_name["jfk.flac"])
    assert float(lj_a @ lj_b) > float(lj_a @ jfk) + 0.1


def test_the_weights_are_pinned_by_sha256(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = weights.speaker_encoder_path()
    assert weights.sha256_of(path) == weights.SPEAKER_ENCODER_SHA256
    monkeypatch.setattr(weights, "SPEAKER_ENCODER_SHA256", "0" * 64)
    with pytest.raises(weights.WeightsCorrupt, match="pinned SHA-256"):
        weights.speaker_encoder_path()


def test_missing_weights_say_how_to_install_them(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(weights.WeightsNotInstalled, match="--no-deps resemblyzer"):
        weights.speaker_encoder_path()


def test_the_checkpoint_reader_refuses_any_class_a_state_dict_does_not_need(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    for header in (checkpoint.MAGIC, checkpoint.PROTOCOL, {"little_endian": True}):
        pickle.dump(header, buffer)
    pickle.dump({"x": Path("/etc/passwd")}, buffer)  # any importable class stands for a malicious one
    doctored = tmp_path / "doctored.pt"
    doctored.write_bytes(buffer.getvalue())
    with pytest.raises(checkpoint.CheckpointError, match="refusing to unpickle pathlib"):
        checkpoint.load(doctored)


def test_the_checkpoint_holds_the_network_resemblyzer_describes() -> None:
    state = checkpoint.load(weights.speaker_encoder_path())["model_state"]
    assert state["lstm.weight_ih_l0"].shape == (4 * encoder.HIDDEN, encoder.N_MELS)
    assert state["lstm.weight_hh_l2"].shape == (4 * encoder.HIDDEN, encoder.HIDDEN)
    assert state["linear.weight"].shape == (encoder.EMBEDDING_DIM, encoder.HIDDEN)


def test_long_speech_is_cut_into_windows_and_short_pieces_are_skipped() -> None:
    rate = encoder.SAMPLE_RATE
    windows = voices.voice_windows([(0, int(0.3 * rate)), (rate, int(1.1 * rate)), (2 * rate, 12 * rate)])
    assert (rate, int(1.1 * rate)) not in windows and all(hi - lo >= 0.5 * rate for lo, hi in windows)
    long_piece = [w for w in windows if w[0] >= 2 * rate]
    assert len(long_piece) == 4 and long_piece[0][0] == 2 * rate and long_piece[-1][1] == 12 * rate
    assert all(a[1] == b[0] for a, b in zip(long_piece, long_piece[1:]))  # tiled: a change is never missed
    # a breath does not split a piece
    assert voices.merge_pieces([(0, rate), (rate + 1000, 2 * rate)]) == [(0, 2 * rate)]


def test_every_window_is_embedded_from_one_partial_of_audio() -> None:
    audio = np.arange(10 * encoder.SAMPLE_RATE, dtype=np.float32)
    for lo, hi in [(0, 8000), (50_000, 70_000), (150_000, 160_000)]:
        clip = voices.window_clip(audio, lo, hi)
        assert len(clip) == encoder.PARTIAL_SAMPLES and clip[0] <= lo and clip[-1] >= hi - 1


def test_voices_of_gives_times_in_seconds_and_unit_embeddings() -> None:
    audio = clips()[0][1]  # jfk, 11 s
    found = voices.voices_of(audio, [(0, len(audio))])
    assert len(found) == 5 and found[0].start_s == 0.0 and abs(found[-1].end_s - len(audio) / 16_000) < 1e-6
    assert all(abs(np.linalg.norm(v.embedding) - 1) < 1e-5 for v in found)
    assert found[1].shifted(60.0).start_s == found[1].start_s + 60.0
