"""One request end to end: check -> probe -> plan cuts -> decode + infer each chunk -> merge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from longscribe_core.audio import SAMPLE_RATE, FloatAudio, Int16Audio
from longscribe_core.segmentation.micro import CUT_OVERLAP_S
from longscribe_core.segments import ChunkResult, Work
from orchestrator.assemble import final
from orchestrator.assemble.final import Assembled, HeldParts
from orchestrator.assemble.progress import ChunkPart, OnProgress, Tracker, bare
from orchestrator.assemble.speakers import Bounds, Diarize
from orchestrator.errors import DiarizationUnsupported, MediaError, MediaTooLong
from orchestrator.infer.catalogue import Catalogue, ServedModel
from orchestrator.infer.pool import TritonPool
from orchestrator.infer.slots import ChunkSlots
from orchestrator.media import ffmpeg
from orchestrator.media.probe import probe
from orchestrator.media.range_check import check_range_support
from orchestrator.media.reference import read_clips
from orchestrator.media.relay import MediaRelay, Source
from orchestrator.plan import language as spoken
from orchestrator.plan import macro
from orchestrator.schemas import MediaRequest, Timings, TranscribeOutput, TranscribeParams, TranscribeRequest
from orchestrator.settings import Settings

T = TypeVar("T")
log = logging.getLogger("longscribe.pipeline")


class Checkpoints(Protocol):
    """Macro chunks an earlier run of the same request finished, and where each new one is kept.

    A job taken over or handed back resumes through this: chunks whose plan
    matches a kept part are not decoded nor transcribed again."""

    def take(self, chunk: macro.MacroChunk) -> ChunkPart | None:
        """The part kept for this planned chunk, if an earlier run finished it with the same cut."""
        ...

    async def save(self, part: ChunkPart) -> None:
        """Keep a finished part (before it is reported)."""
        ...

    async def read(self, index: int) -> ChunkPart | None:
        """The part of chunk `index`, taken or saved in this run (None: lost since): the finished transcript
        is assembled from these, one at a time, rather than from every result held to the end."""
        ...


class Transcriber(Protocol):
    def __call__(
        self, request: MediaRequest, progress: OnProgress | None = None, checkpoints: Checkpoints | None = None
    ) -> Awaitable[TranscribeOutput]: ...


class JobTranscriber(Protocol):
    """A job's run: with checkpoints, the answer may stay `Assembled` (read again from them when written)."""

    def __call__(
        self, request: MediaRequest, progress: OnProgress, checkpoints: Checkpoints
    ) -> Awaitable[TranscribeOutput | Assembled]: ...


SILENCE_SEARCHES_IN_FLIGHT = 4  # each is one short FFmpeg range read
REFERENCE_READS_IN_FLIGHT = 2  # FFmpeg decodes of known speakers' clips, all of this process's requests
LAST_READ_SLACK_S = 60.0  # the last chunk reads this far past the probed end, to catch a short probe
SHORT_READ_S = 0.5  # a read this much shorter than asked for has reached the end of the media


@dataclass
class Pipeline:
    """The real transcriber; `app.create_app` takes any `Transcriber`.

    The slots are per service, not per request: they bound the FFmpeg
    processes and Triton calls of all requests together.
    """

    settings: Settings
    relay: MediaRelay
    pool: TritonPool
    observe_chunk: Callable[[float], None] = lambda seconds: None  # each macro chunk's Triton time
    chunk_slots: ChunkSlots = field(init=False)
    search_slots: asyncio.Semaphore = field(init=False)
    reference_slots: asyncio.Semaphore = field(init=False)
    catalogue: Catalogue = field(init=False)

    def __post_init__(self) -> None:
        self.catalogue = Catalogue.from_settings(self.settings)
        self.chunk_slots = ChunkSlots(self.settings.chunks_in_flight_per_endpoint, self.pool)
        self.search_slots = asyncio.Semaphore(SILENCE_SEARCHES_IN_FLIGHT)
        self.reference_slots = asyncio.Semaphore(REFERENCE_READS_IN_FLIGHT)

    async def __call__(
        self, request: MediaRequest, progress: OnProgress | None = None, checkpoints: Checkpoints | None = None
    ) -> TranscribeOutput:
        """Transcribe the media at `request.media_url`, or the uploaded file, with the request's params."""
        # before any media is read: the edge checked it, but a job's upload or an OpenAI form reaches here unchecked
        assembled = await self.assemble(request, progress, checkpoints)
        return await assembled.output()

    async def assemble(
        self, request: MediaRequest, progress: OnProgress | None = None, checkpoints: Checkpoints | None = None
    ) -> Assembled:
        """As `__call__`, but the answer is read again from the checkpoints (or the parts held) when written:
        a job's end streams it into Redis without holding the transcript."""
        model = self.catalogue.pick(request.params.model, request.params.task)
        media = request.media_url if isinstance(request, TranscribeRequest) else request.upload.path
        parts = checkpoints if checkpoints is not None else HeldParts()
        with self.relay.open(media) as source:
            try:
                return await self._transcribe(request, model, source, progress or (lambda p: None), parts)
            except MediaError:
                source.check()  # FFmpeg only saw a broken read: the relay knows why
                raise

    async def _transcribe(
        self,
        request: MediaRequest,
        model: ServedModel,
        source: Source,
        progress: OnProgress,
        checkpoints: Checkpoints,
    ) -> Assembled:
        started = time.monotonic()
        timings = Timings()
        s, params = self.settings, request.params
        diarize = await self.diarization(params)  # refused before any media is read
        with _timed(timings, "probe_sec"):
            if source.path is None:  # an upload is on this disk: nothing to check
                await check_range_support(self.relay, source.url)
            info = await probe(source.local_url, s.ffprobe_bin, s.media_timeout_sec)
        self._check_length(info.duration_s)
        with _timed(timings, "silence_search_sec"):
            chunks, in_speech = await self._plan(
                source, info.duration_s, params.macro_chunk_size_sec, params.silence_detection_smoothing_num_samples
            )
        # the first chunk's audio decides the file's language; the others wait for it before inference
        language: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        if params.language:
            language.set_result(params.language)
        tracker = Tracker(len(chunks), info.duration_s, params.word_timestamps, progress)

        async def work(chunk: macro.MacroChunk) -> ChunkPart:
            kept = checkpoints.take(chunk)
            if kept is not None:
                if chunk.index == 0 and not language.done():
                    language.set_result(kept.result.language)  # what the first chunk was heard as
                return kept
            part = await self._chunk(source, chunk, request, chunk is chunks[-1], language, timings, in_speech)
            await checkpoints.save(part)
            return part

        async def finished(chunk: macro.MacroChunk) -> ChunkPart:
            return bare(await tracker.track(work(chunk)))  # the results stay where `checkpoints` keeps them

        parts = await _all([finished(c) for c in chunks])
        extra = await self._beyond_probe(source, parts[-1], request, language, timings)  # rare, and few
        parts += [bare(p) for p in extra]
        source.check()  # a read the relay could not finish must not pass as the whole media

        async def read(index: int) -> ChunkPart | None:
            return extra[index - len(chunks)] if index >= len(chunks) else await checkpoints.read(index)

        async def read_or_redo(index: int) -> ChunkPart | None:
            # a checkpoint Redis lost since it was saved (a restart): transcribed again, and saved again
            return await read(index) or await work(chunks[index])

        with _timed(timings, "merge_sec"):
            # what FFmpeg decoded, not what the header claimed (either way it can be wrong)
            duration_s = max((p.decoded_end_s for p in parts if p.n_samples), default=0.0)
            assembled = await final.assemble(
                read_or_redo, len(parts), duration_s, params.word_timestamps, started, diarize
            )
        # what decoding used, once per transcription: the language decided for the file (None: each piece's own)
        log.info(
            "transcribed %.1f s with model=%s task=%s language=%s temperature=%g prompt=%s",
            assembled.input_duration_sec,
            model.name,
            params.task,
            language.result() if language.done() else None,
            params.temperature,
            "given" if params.prompt else "none",
        )
        return replace(assembled, read=read, timings=timings, model=model.name)

    async def diarization(self, params: TranscribeParams) -> Diarize | None:
        """What diarization asks (None: not asked), the known speakers' reference voices embedded; refused
        as `check_diarization` refuses."""
        model = await self._speaker_model(params)
        if model is None:
            return None
        references: dict[str, NDArray[np.float32]] = {}
        for name, audio in await self._references(params):
            references[name] = await self.pool.embed_voice(audio, model)
        bounds = Bounds(params.num_speakers, params.min_speakers, params.max_speakers)
        return Diarize(bounds, references, self.settings.known_speaker_similarity)

    async def check_diarization(self, params: TranscribeParams) -> None:
        """DiarizationUnsupported when diarize is asked and no Triton serves the speaker encoder,
        SpeakerReferenceInvalid for a reference clip that is not 2-10 s of audio. A job's submission asks it
        (`api.edge.check_runnable`), so these are refused when the job is sent, not when a worker takes it;
        the clips are read, not embedded (the worker does that)."""
        if await self._speaker_model(params) is not None:
            await self._references(params)

    async def _speaker_model(self, params: TranscribeParams) -> str | None:
        """The speaker encoder's Triton name when diarize is asked (None: not asked); DiarizationUnsupported
        when no Triton serves it."""
        if not params.diarize:
            return None
        model = self.settings.speaker_model
        if not model or not await self.pool.serves(model):
            raise DiarizationUnsupported(
                f"this service cannot tell speakers apart: its Triton serves no speaker encoder ({model or 'none'})"
            )
        return model

    async def _references(self, params: TranscribeParams) -> list[tuple[str, FloatAudio]]:
        """The known speakers' names and reference clips, read (16 kHz mono float)."""
        clips = zip(params.known_speaker_names or [], params.known_speaker_references or [])
        return await read_clips(list(clips), self.settings.ffmpeg_bin, self.reference_slots, self.settings.upload_dir)

    def _check_length(self, duration_s: float) -> None:
        limit = self.settings.max_media_duration_sec
        if duration_s > limit:
            raise MediaTooLong(f"the media lasts at least {duration_s:.0f} s, over the limit of {limit:.0f} s")

    async def _detect_language(self, pcm: Int16Audio, whisper_model: str) -> str | None:
        """The language the chosen Whisper model hears in the first speech of the first chunk."""
        windows = spoken.speech_windows(pcm[: int(spoken.DETECT_SPAN_S * SAMPLE_RATE)])
        if not windows:
            return None  # no speech there: each piece decides for itself
        return spoken.vote(await self.pool.detect_language(windows, whisper_model))

    async def _read(self, source: Source, start_s: float, duration_s: float, timeout_s: float) -> Int16Audio:
        """PCM of one time range, read through the relay; a read the relay cut short raises its reason."""
        pcm = await ffmpeg.read_pcm(source.local_url, start_s, duration_s, self.settings.ffmpeg_bin, timeout_s)
        source.check()
        return pcm

    async def _plan(
        self, source: Source, duration_s: float, macro_s: float, smoothing: int
    ) -> tuple[list[macro.MacroChunk], set[float]]:
        """Move every nominal cut into a pause, reading only a window around each.

        Also returns the cuts that found no pause: the chunks on both sides of
        those are read with overlap, and the merge keeps each word once.
        """

        async def snap(nominal_s: float) -> macro.Cut:
            lo, hi = macro.search_window(nominal_s, macro_s, duration_s, self.settings.silence_search_window_sec)
            async with self.search_slots:
                pcm = await self._read(source, lo, hi - lo, self.settings.media_timeout_sec)
            return macro.snap_cut(lo, pcm, smoothing, fallback_s=nominal_s)

        cuts = await _all([snap(c) for c in macro.nominal_cuts(duration_s, macro_s)])
        chunks = macro.plan_chunks(duration_s, [c.at_s for c in cuts])
        return chunks, {c.at_s for c in cuts if not c.in_pause}

    async def _chunk(
        self,
        source: Source,
        chunk: macro.MacroChunk,
        request: MediaRequest,
        is_last: bool,
        language: asyncio.Future[str | None],
        timings: Timings,
        in_speech: frozenset[float] | set[float] = frozenset(),
    ) -> ChunkPart:
        """Decode one chunk, with context on each side, and transcribe it.

        The context is `macro_chunk_overlap_sec`, and at least CUT_OVERLAP_S
        at a cut that fell in speech. The last chunk reads past the probed end
        (headers can under-report), but never unboundedly: `_beyond_probe`
        continues if there is more.
        """
        params = request.params
        whisper_model = self.catalogue.pick(params.model).triton_name

        def overlap(cut_s: float) -> float:
            return max(params.macro_chunk_overlap_sec, CUT_OVERLAP_S if cut_s in in_speech else 0.0)

        read_from = max(0.0, chunk.start_s - overlap(chunk.start_s))
        length = chunk.end_s - read_from + (LAST_READ_SLACK_S if is_last else overlap(chunk.end_s))
        async with self.chunk_slots():
            s = self.settings
            with _timed(timings, "decode_sec"):
                pcm = await self._read(source, read_from, length, s.chunk_timeout_sec)
            if chunk.index == 0 and not language.done():
                try:
                    language.set_result(await self._detect_language(pcm, whisper_model))
                except Exception as exc:
                    language.set_exception(exc)
            # shielded: one waiter cancelled must not cancel the language for the others
            spoken = await asyncio.shield(language)
            result = ChunkResult(segments=(), language=None)
            if len(pcm):
                started = time.monotonic()
                with _timed(timings, "inference_sec"):
                    result = await self.pool.transcribe_chunk(
                        pcm,
                        params.micro_chunk_size_sec,
                        params.silence_detection_smoothing_num_samples,
                        spoken,
                        params.prompt,
                        whisper_model,
                        params.task,
                        params.temperature,
                        params.diarize,
                    )
                self.observe_chunk(time.monotonic() - started)
                _add_work(timings, result.work)
        decoded_end_s = read_from + len(pcm) / SAMPLE_RATE
        end_s = decoded_end_s if is_last else chunk.end_s
        return ChunkPart(
            chunk=replace(
                chunk,
                read_start_s=read_from,
                end_s=max(chunk.start_s, end_s),
                in_speech=chunk.index > 0 and chunk.start_s in in_speech,
            ),
            result=result,
            decoded_end_s=decoded_end_s,
            n_samples=len(pcm),
            reached_end=decoded_end_s < read_from + length - SHORT_READ_S,
        )

    async def _beyond_probe(
        self,
        source: Source,
        last: ChunkPart,
        request: MediaRequest,
        language: asyncio.Future[str | None],
        timings: Timings,
    ) -> list[ChunkPart]:
        """The header under-reported the length: keep reading chunk by chunk to the real end.

        `language` is decided by now (the first chunk has run)."""
        extra: list[ChunkPart] = []
        macro_s = request.params.macro_chunk_size_sec
        while not last.reached_end:
            self._check_length(last.decoded_end_s)
            start_s = last.decoded_end_s
            nxt = macro.MacroChunk(last.chunk.index + 1, start_s, start_s + macro_s)
            last = await self._chunk(source, nxt, request, True, language, timings)
            extra.append(last)
        return extra


def _add_work(timings: Timings, work: Work) -> None:
    """What one chunk cost inside the whisper model, added to the request's timings."""
    timings.whisper_windows += work.windows
    timings.whisper_aligned += work.aligned
    timings.mel_sec += work.mel_s
    timings.encoder_sec += work.encoder_s
    timings.decoder_sec += work.decoder_s
    timings.alignment_sec += work.alignment_s


@contextlib.contextmanager
def _timed(timings: Timings, field: str) -> Iterator[None]:
    """Add the block's wall time to one field of `timings`."""
    started = time.monotonic()
    try:
        yield
    finally:
        setattr(timings, field, getattr(timings, field) + time.monotonic() - started)


async def _all(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run all; the first failure cancels the others (and their FFmpeg) and is raised as is."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except ExceptionGroup as failures:
        first = failures.exceptions[0]
        while isinstance(first, ExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [t.result() for t in tasks]
