"""The Python client against a production service (keys on, loopback media refused): it transcribes a
file (uploaded) and a URL (fetched by the service), follows and cancels a job, and names every failure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import longscribe
from orchestrator.common.net import free_port

from ..corpus import Recording, clips_under, manifest, speech_dir, wer
from ..keyed_service import SERVICE_KEY
from ..wer_bounds import JFK_MAX_WER, LJ001_0001_MAX_WER

pytestmark = pytest.mark.integration
JFK = next(c for c in manifest() if c.path.name == "jfk.flac")


async def test_the_async_client_transcribes_a_local_file_by_uploading_it(keyed_service_url: str) -> None:
    async with longscribe.AsyncClient(keyed_service_url, SERVICE_KEY) as client:
        transcript = await client.transcribe(JFK.path, word_timestamps=True)
    assert isinstance(transcript, longscribe.Transcript)
    assert wer(JFK.reference, transcript.text) <= JFK_MAX_WER
    assert transcript.input_duration_sec == pytest.approx(11.0, abs=0.5) and transcript.speedup > 0
    assert transcript.language_code == "en" and transcript.model == "tiny.en"
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts) and all(s.end <= transcript.input_duration_sec + 0.5 for s in transcript.segments)
    assert all(s.words for s in transcript.segments)


async def test_the_sync_client_transcribes_a_url_and_renders_subtitles(
    keyed_service_url: str, allowed_media_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = clips_under("ljspeech")[0]
    url = f"{allowed_media_url}/speech/{clip.path.relative_to(speech_dir()).as_posix()}"
    monkeypatch.setenv("LONGSCRIBE_API_KEY", SERVICE_KEY)  # the default key

    def blocking() -> tuple[longscribe.Transcript, str]:
        with longscribe.Client(keyed_service_url) as client:
            transcript = client.transcribe(url)
            job = client.submit(url)
            job.wait()
            return transcript, job.transcript("srt")

    transcript, srt = await asyncio.to_thread(blocking)  # the service runs on this loop: block another thread
    assert wer(clip.reference, transcript.text) <= LJ001_0001_MAX_WER
    assert srt.startswith("1\n00:00:") and "-->" in srt


async def test_a_job_is_followed_and_cancelled(
    keyed_service_url: str, media_root: Path, lj_recording: Recording
) -> None:
    async with longscribe.AsyncClient(keyed_service_url, SERVICE_KEY) as client:
        job = await client.submit(media_root / "lj001.wav", macro_chunk_size_sec=30)
        seen: list[longscribe.JobEvent] = []
        async for event in job.events():
            seen.append(event)
            if isinstance(event, longscribe.ChunkEvent) and event.segments:
                break  # chunks are done and settled segments: the job runs (the first may settle none yet)
        chunk = seen[-1]
        assert isinstance(chunk, longscribe.ChunkEvent)
        assert chunk.progress.audio_total_sec == pytest.approx(lj_recording.duration_s, abs=1.0)
        assert chunk.segments and chunk.segments[0].text.strip()
        assert await job.cancel() == "cancelled"
        with pytest.raises(longscribe.JobFailed) as failed:
            await job.wait()  # its events, replayed from the start, end in the cancel
        assert failed.value.status == "cancelled" and failed.value.job_id == job.id
        assert (await job.state()).status == "cancelled"


async def test_every_failure_is_a_named_error_with_the_services_words(keyed_service_url: str, media_url: str) -> None:
    async with longscribe.AsyncClient(keyed_service_url, "not-a-key") as client:
        with pytest.raises(longscribe.AuthenticationError) as refused:
            await client.transcribe(JFK.path)
    assert refused.value.status == 401 and refused.value.code == "unauthorized" and refused.value.hint
    async with longscribe.AsyncClient(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(longscribe.ServiceUnreachable):
            await client.transcribe(JFK.path)
    async with longscribe.AsyncClient(keyed_service_url, SERVICE_KEY) as client:
        with pytest.raises(longscribe.JobFailed) as forbidden:  # loopback media: refused, as in production
            await client.transcribe(f"{media_url}/speech/jfk.flac")
        with pytest.raises(longscribe.APIError) as invalid:
            await client.submit(JFK.path, temperature=5)
        with pytest.raises(FileNotFoundError):
            await client.submit("/no/such/file.wav")
    assert forbidden.value.code == "media_url_forbidden" and forbidden.value.hint
    assert invalid.value.status == 422 and "temperature" in invalid.value.message
