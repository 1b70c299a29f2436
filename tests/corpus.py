"""Real speech from ../shared/data/speech, and long recordings joined from it.

A joined recording knows where each clip starts, so timestamps can be checked
against the truth, and its reference is the clips' transcripts in order.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import wave
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
REPO = Path(__file__).resolve().parent.parent
SPEECH_DIRS = (REPO.parent / "shared" / "data" / "speech", REPO / "tests" / "data")


def speech_dir() -> Path:
    # LONGSCRIBE_SPEECH_DIR names the corpus where shared/ does not lie beside the checkout (a worktree)
    override = [Path(os.environ["LONGSCRIBE_SPEECH_DIR"])] if os.environ.get("LONGSCRIBE_SPEECH_DIR") else []
    for path in (*override, *SPEECH_DIRS):
        if (path / "manifest.jsonl").exists():
            return path
    raise FileNotFoundError(f"no speech manifest in {', '.join(map(str, SPEECH_DIRS))}")


@dataclass(frozen=True)
class Clip:
    path: Path
    reference: str
    duration_s: float
    reference_kind: str = ""  # the manifest's words on how the reference is written

    @property
    def cased(self) -> bool:
        """Its reference keeps case and punctuation (LJ Speech, jfk), so it can score formatting."""
        return self.reference_kind.startswith(("cased", "official LJ Speech"))


def manifest() -> list[Clip]:
    root = speech_dir()
    clips = []
    for line in (root / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry.get("reference"):
            kind = entry.get("reference_kind", "")
            clips.append(Clip(root / entry["audio"], entry["reference"], float(entry["duration_sec"]), kind))
    return clips


def unreferenced(name: str) -> Clip | None:
    """A file the manifest lists without a reference (physicsworks.wav, a lecture: for speed), if this
    corpus has it (tests/data, the fallback, does not)."""
    root = speech_dir()
    for line in (root / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry["audio"] == name and (root / name).exists():
            return Clip(root / name, "", float(entry["duration_sec"]), entry.get("reference_kind", ""))
    return None


def clips_under(prefix: str) -> list[Clip]:
    return sorted(
        (c for c in manifest() if c.path.relative_to(speech_dir()).as_posix().startswith(prefix)),
        key=lambda c: c.path.name,
    )


def decode_pcm(path: Path) -> np.ndarray:
    """Any audio file -> 16 kHz mono int16."""
    out = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(path),
            "-ac",
            "1",
            "-ar",
            str(SAMPLE_RATE),
            "-f",
            "s16le",
            "-",
        ],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(out, dtype=np.int16)


@dataclass(frozen=True)
class Scored:
    """A stretch of a recording that has a reference, where the rest has none."""

    start_s: float
    end_s: float
    reference: str


@dataclass(frozen=True)
class Recording:
    path: Path
    reference: str
    clip_starts_s: tuple[float, ...]  # where each clip's audio begins
    duration_s: float
    scored: tuple[Scored, ...] = ()  # where a reference applies, when not everywhere


def join_clips(clips: list[Clip], out: Path, gaps_s: list[float] | float = 0.6, seed: int = 0) -> Recording:
    """Write clips joined by low-noise gaps (about -60 dBFS) as a 16 kHz WAV."""
    rng = np.random.default_rng(seed)
    gap_list = gaps_s if isinstance(gaps_s, list) else [gaps_s] * len(clips)
    parts, starts, cursor = [], [], 0
    for clip, gap in zip(clips, gap_list):
        noise = (rng.standard_normal(int(gap * SAMPLE_RATE)) * 30).astype(np.int16)
        pcm = decode_pcm(clip.path)
        parts += [noise, pcm]
        starts.append((cursor + len(noise)) / SAMPLE_RATE)
        cursor += len(noise) + len(pcm)
    tail = (rng.standard_normal(int(0.5 * SAMPLE_RATE)) * 30).astype(np.int16)
    audio = np.concatenate([*parts, tail])
    out.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(audio.tobytes())
    reference = " ".join(c.reference for c in clips)
    return Recording(out, reference, tuple(starts), len(audio) / SAMPLE_RATE)


def wer(reference: str, hypothesis: str, english: bool = True) -> float:
    """Word error rate after Whisper's English normaliser (its basic one for other languages)."""
    import jiwer
    from whisper_normalizer.basic import BasicTextNormalizer
    from whisper_normalizer.english import EnglishTextNormalizer

    normalise = EnglishTextNormalizer() if english else BasicTextNormalizer()
    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


def aligned(reference: str, hypothesis: str) -> Any:
    """jiwer's word alignment of the two texts (a `WordOutput`: hits, insertions and each aligned chunk) after
    the same English normaliser as `wer`, the reference's parentheses opened first: the normaliser drops a
    parenthesised aside, and LJ001-0024's 13 spoken words "(which also was printed ... sixty-two)" would
    otherwise count as inserted wherever that clip is heard."""
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    normalise = EnglishTextNormalizer()
    opened = reference.replace("(", " ").replace(")", " ")
    return jiwer.process_words(normalise(opened), normalise(hypothesis))


def insertions(reference: str, hypothesis: str) -> list[str]:
    """The hypothesis words the alignment marks as inserted: a phrase transcribed twice, at a cut, shows
    here word for word."""
    alignment = aligned(reference, hypothesis)
    words = alignment.hypotheses[0]
    return [w for c in alignment.alignments[0] if c.type == "insert" for w in words[c.hyp_start_idx : c.hyp_end_idx]]


SYNTHETIC_DIR = REPO / "tests" / "data" / "synthetic"


def synthetic_speech(language: str) -> Clip:
    """A sentence-long clip spoken by espeak-ng (tests/data/synthetic): the corpus has only English."""
    path = SYNTHETIC_DIR / f"espeak-{language}.flac"
    reference = path.with_suffix(".txt").read_text().strip()
    return Clip(path, reference, len(decode_pcm(path)) / SAMPLE_RATE)


def long_form_recording(out: Path, seed: int = 0, cased_only: bool = False) -> Recording:
    """Every clip with a reference, in manifest order, joined with random 0.4-1.5 s low-noise gaps.

    `cased_only`: only the clips whose reference is cased and punctuated (`Clip.cased`), for `readability`.
    """
    rng = np.random.default_rng(seed)
    clips = [c for c in manifest() if c.cased or not cased_only]
    gaps = [float(g) for g in rng.uniform(0.4, 1.5, len(clips))]
    return join_clips(clips, out, gaps_s=gaps, seed=seed)


def repeated_recording(work: Path, minutes: float, encode_args: list[str]) -> Recording:
    """The long-form recording (~5 min of real speech) encoded once with `encode_args` (an MP3 or FLAC
    encoder's FFmpeg options), repeated to `minutes`. The repeats are joined by stream copy, so a
    10-hour file takes seconds to build; its reference is the long form's, repeated."""
    one = long_form_recording(work / "long-form.wav")
    tag = hashlib.sha256(" ".join(encode_args).encode()).hexdigest()[:8]  # one file per encoding
    suffix = ".flac" if "flac" in encode_args else ".mp3"
    piece = work / f"long-form-{tag}{suffix}"
    if not piece.exists():
        args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(one.path), *encode_args, str(piece)]
        subprocess.run(args, check=True)
    copies = max(1, round(minutes * 60 / one.duration_s))
    out = work / f"speech-{copies}x-{tag}{suffix}"
    listing = work / f"concat-{copies}-{tag}.txt"
    listing.write_text(f"file '{piece.name}'\n" * copies)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
        + ["-c", "copy", str(out)],
        check=True,
    )
    duration = float(
        subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(out)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    reference = " ".join([one.reference] * copies)
    starts = tuple(k * one.duration_s + s for k in range(copies) for s in one.clip_starts_s)
    return Recording(out, reference, starts, duration)


LECTURE = "physicsworks.wav"
OTHER_SPEAKERS = ("librispeech/", "sense_and_sensibility/", "jfk.flac")  # not LJ Speech's reader
LECTURE_GAP_S = 2.0  # around the lecture, so a segment starts either in it or in the referenced clips


def other_speakers_recording(out: Path, minutes: float, seed: int = 1) -> Recording:
    """Speakers the long form hardly has (it is mostly LJ Speech's reader), repeated to about `minutes`:
    each round is the MIT lecture (no reference) then the LibriSpeech, Austen and jfk clips in a new
    order with 0.4-1.5 s gaps. Its reference is the clips' transcripts; `scored` holds each round's
    block of clips, from half the lecture gap before its first clip to half the gap after its last.
    Without the lecture in the corpus, the clips alone, scored everywhere."""
    rng = np.random.default_rng(seed)
    others = [c for c in manifest() if c.path.relative_to(speech_dir()).as_posix().startswith(OTHER_SPEAKERS)]
    lecture = unreferenced(LECTURE)
    lead = [lecture] if lecture else []
    round_s = sum(c.duration_s for c in [*lead, *others]) + 2 * LECTURE_GAP_S + len(others)
    rounds = [[others[i] for i in rng.permutation(len(others))] for _ in range(max(1, round(minutes * 60 / round_s)))]
    clips: list[Clip] = []
    gaps: list[float] = []
    for order in rounds:
        clips += [*lead, *order]
        gaps += (
            [LECTURE_GAP_S] * len(lead) + [LECTURE_GAP_S] + [float(g) for g in rng.uniform(0.4, 1.5, len(order) - 1)]
        )
    joined = join_clips(clips, out, gaps_s=gaps, seed=seed)
    placed = list(zip(clips, joined.clip_starts_s))
    half = LECTURE_GAP_S / 2
    scored: tuple[Scored, ...] = ()
    if lecture:  # a block runs from just after one lecture to just before the next (or the end)
        lectures = [k for k, (c, _) in enumerate(placed) if not c.reference]
        firsts = [placed[k + 1][1] - half for k in lectures]
        lasts = [placed[k][1] - half for k in lectures[1:]] + [joined.duration_s]
        texts = [" ".join(c.reference for c in order) for order in rounds]
        scored = tuple(Scored(lo, hi, text) for lo, hi, text in zip(firsts, lasts, texts, strict=True))
    return replace(
        joined,
        reference=" ".join(c.reference for c in clips if c.reference),
        clip_starts_s=tuple(s for c, s in placed if c.reference),
        scored=scored,
    )
