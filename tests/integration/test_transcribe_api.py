"""POST /v1/transcribe end to end: range server -> FFmpeg -> Triton -> merged transcript."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.api.app import create_app
from orchestrator.common.net import free_port, serving
from orchestrator.settings import Settings

from ..corpus import Recording, insertions, manifest, wer
from ..counting_server import Served, counting_app
from ..media_servers import LOOPBACK
from ..wer_bounds import JFK_MAX_WER

pytestmark = pytest.mark.integration

# measured 1 inserted word ("there") with a 10 s overlap, 0 with none, on 2026-12-03 (lj001.wav, macro 60 s,
# micro 30 s): headroom two words. A doubled phrase of three words or more fails; the word count above
# (5 %, 28 words of 563) would let a whole sentence through.
MAX_INSERTED_WORDS = 3


async def post(service_url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{service_url}/v1/transcribe", json=body) as response:
            return response.status, await response.json()


def assert_well_formed(out: dict[str, Any], duration_s: float) -> None:
    segments = out["segments"]
    assert segments, "no segments"
    previous_end = 0.0
    for seg in segments:
        assert 0.0 <= seg["start_time_sec"] <= seg["end_time_sec"] <= duration_s + 1e-6
        assert seg["start_time_sec"] >= previous_end - 1e-6, "segments overlap or are out of order"
        assert seg["text"].strip()
        assert seg["language_code"] == "en" and seg["language"] == "english"
        previous_end = seg["end_time_sec"]
    assert out["text"] == " ".join(s["text"] for s in segments)
    assert out["speedup"] == pytest.approx(out["input_duration_sec"] / out["processing_duration_sec"], rel=1e-6)


async def test_jfk_is_transcribed_accurately(service_url: str, media_url: str) -> None:
    jfk = next(c for c in manifest() if c.path.name == "jfk.flac")
    status, out = await post(service_url, {"media_url": f"{media_url}/speech/jfk.flac"})
    assert status == 200, out
    assert wer(jfk.reference, out["text"]) <= JFK_MAX_WER
    assert out["input_duration_sec"] == pytest.approx(jfk.duration_s, abs=0.1)
    assert_well_formed(out, out["input_duration_sec"])


async def test_long_recording_through_many_macro_and_micro_chunks(
    service_url: str, media_url: str, lj_recording: Recording
) -> None:
    params = {"macro_chunk_size_sec": 60, "micro_chunk_size_sec": 20}
    status, out = await post(service_url, {"media_url": f"{media_url}/lj001.wav", "params": params})
    assert status == 200, out
    error_rate = wer(lj_recording.reference, out["text"])
    print(f"LJ {lj_recording.duration_s:.0f} s: WER {error_rate:.3f}, speedup {out['speedup']:.1f}x")
    assert error_rate <= 0.08
    assert out["input_duration_sec"] == pytest.approx(lj_recording.duration_s, abs=0.1)
    assert_well_formed(out, lj_recording.duration_s)
    # speech reaches the last macro chunk: nothing after a cut was lost
    assert out["segments"][-1]["end_time_sec"] > lj_recording.clip_starts_s[-1]


async def test_seed_defaults_accept_the_seed_body_shape(service_url: str, media_url: str) -> None:
    body = {
        "media_url": f"{media_url}/speech/jfk.flac",
        "params": {
            "wav_sampling_rate_hz": 16000,
            "macro_chunk_size_sec": 300,
            "macro_chunk_overlap_sec": 0,
            "micro_chunk_size_sec": 5,
            "silence_detection_smoothing_num_samples": 1600,
        },
    }
    status, out = await post(service_url, body)
    assert status == 200, out
    assert set(out) == {"segments", "input_duration_sec", "processing_duration_sec", "speedup", "text"}


async def test_server_without_range_support_is_refused_clearly(service_url: str, no_range_url: str) -> None:
    status, out = await post(service_url, {"media_url": f"{no_range_url}/speech/jfk.flac"})
    assert status == 422
    assert out["error"]["code"] == "range_not_supported"
    assert "range" in out["error"]["message"].lower()


async def test_missing_media_is_a_clear_client_error(service_url: str, media_url: str) -> None:
    status, out = await post(service_url, {"media_url": f"{media_url}/no-such-file.wav"})
    assert 400 <= status < 500
    assert out["error"]["code"] == "media_http_error"
    assert "404" in out["error"]["message"]


async def test_readiness_reports_every_triton_endpoint(service_url: str, triton_grpc_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{service_url}/readyz") as response:
            assert response.status == 200
            assert (await response.json())["endpoints"] == {triton_grpc_url: True}
        async with session.get(f"{service_url}/healthz") as response:
            assert response.status == 200


async def test_chunks_spread_over_endpoints_and_skip_a_dead_one(
    triton_grpc_url: str, media_url: str, lj_recording: Recording
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    settings = Settings(triton_grpc_urls=[dead, triton_grpc_url], allowed_media_hosts=LOOPBACK)
    async with serving(create_app(settings)) as service:
        params = {"macro_chunk_size_sec": 60, "micro_chunk_size_sec": 30}
        status, out = await post(service, {"media_url": f"{media_url}/lj001.wav", "params": params})
        assert status == 200, out
        assert wer(lj_recording.reference, out["text"]) <= 0.08
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{service}/readyz") as response:
                # one dead endpoint does not take the orchestrator out of the Service: chunks go to the other
                assert response.status == 200
                assert (await response.json())["endpoints"] == {dead: False, triton_grpc_url: True}


async def test_metrics_show_each_models_triton_queue_and_the_instances_match_the_capacity(
    triton_grpc_url: str, media_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(triton_grpc_urls=[triton_grpc_url], allowed_media_hosts=LOOPBACK)
    async with serving(create_app(settings)) as service, aiohttp.ClientSession() as session:
        async with session.get(f"{service}/readyz") as response:  # first contact: the instance count is read
            assert response.status == 200
        status, out = await post(service, {"media_url": f"{media_url}/speech/jfk.flac"})
        assert status == 200, out
        async with session.get(f"{service}/metrics") as response:
            scraped = await response.text()
    # the models a transcription without diarize runs (the speaker encoder waits idle for diarize)
    for model in [m for m in settings.triton_models if m != settings.speaker_model]:
        for counter in ("longscribe_triton_queue_duration_us_total", "longscribe_triton_inferences_total"):
            line = next(x for x in scraped.splitlines() if x.startswith(counter) and f'model="{model}"' in x)
            assert float(line.rsplit(" ", 1)[1]) >= (1 if "inferences" in counter else 0)
    assert "would wait inside Triton" not in caplog.text and "stay idle" not in caplog.text


async def test_each_macro_chunk_is_read_by_seeking_not_from_byte_zero(
    service_url: str, media_root: Path, lj_recording: Recording
) -> None:
    served = Served()
    async with serving(counting_app(media_root, served)) as base:
        params = {"macro_chunk_size_sec": 60, "micro_chunk_size_sec": 30}
        status, out = await post(service_url, {"media_url": f"{base}/lj001.wav", "params": params})
    assert status == 200, out
    size = (media_root / "lj001.wav").stat().st_size
    bytes_per_s = 16_000 * 2  # the recording is 16 kHz mono s16le
    n_chunks = round(lj_recording.duration_s / 60)
    for k in range(1, n_chunks):
        nominal = 44 + k * 60 * bytes_per_s
        # a read starts within the ±5 s silence window of every macro cut
        assert any(abs(start - nominal) <= 6 * bytes_per_s for start in served.range_starts), k
    # Opening and probing costs each FFmpeg a few hundred kB from the start of the
    # file; only the first chunk may read on from there. Decoding every chunk
    # from byte 0 would send about (n + 1) / 2 whole files.
    from_the_start = [sent for start, sent in served.per_request if start < 64 * 1024 and sent > 1_000_000]
    assert len(from_the_start) <= 1, served.per_request
    assert served.bytes_sent < 2.0 * size


async def test_overlapping_macro_chunks_keep_each_sentence_once(
    service_url: str, media_url: str, lj_recording: Recording
) -> None:
    params = {"macro_chunk_size_sec": 60, "micro_chunk_size_sec": 30, "macro_chunk_overlap_sec": 10}
    status, out = await post(service_url, {"media_url": f"{media_url}/lj001.wav", "params": params})
    assert status == 200, out
    assert wer(lj_recording.reference, out["text"]) <= 0.08
    assert len(out["text"].split()) <= 1.05 * len(lj_recording.reference.split()), "words were doubled"
    # a phrase heard in both macro chunks of an overlap comes back twice: the alignment shows it as inserted words
    inserted = insertions(lj_recording.reference, out["text"])
    print(f"overlap 10 s: WER {wer(lj_recording.reference, out['text']):.3f}, inserted words {inserted}")
    assert len(inserted) <= MAX_INSERTED_WORDS, f"words were doubled: {inserted}"
    assert_well_formed(out, lj_recording.duration_s)


async def test_media_whose_header_under_reports_its_length_is_read_to_the_end(
    service_url: str, media_root: Path, media_url: str, lj_recording: Recording
) -> None:
    """Two CBR MP3s without a Xing header, joined byte for byte: ffprobe estimates
    the whole length from the first file's bitrate and sees about a quarter of it."""
    jfk = next(c for c in manifest() if c.path.name == "jfk.flac")
    parts = []
    for source, kbps in ((jfk.path, 128), (lj_recording.path, 32)):
        target = media_root / f"part-{kbps}.mp3"
        subprocess.run(
            [
                "ffmpeg",
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(source),
                "-ac",
                "1",
                "-ar",
                "16000",
                "-c:a",
                "libmp3lame",
                "-b:a",
                f"{kbps}k",
                "-write_xing",
                "0",
                str(target),
            ],
            check=True,
        )
        parts.append(target.read_bytes())
    (media_root / "lying.mp3").write_bytes(b"".join(parts))
    true_s = jfk.duration_s + lj_recording.duration_s

    status, out = await post(service_url, {"media_url": f"{media_url}/lying.mp3"})
    assert status == 200, out
    assert out["input_duration_sec"] == pytest.approx(true_s, abs=2.0)
    assert_well_formed(out, out["input_duration_sec"])
    assert out["segments"][-1]["end_time_sec"] > true_s - 10
    assert wer(f"{jfk.reference} {lj_recording.reference}", out["text"]) <= 0.08


async def test_media_whose_header_over_reports_its_length_reports_the_true_length(
    service_url: str, media_root: Path, media_url: str, lj_recording: Recording
) -> None:
    """VBR MP3 without a Xing header that opens with 20 s of digital silence: ffprobe
    takes the silent frames' low bitrate for the whole file and sees it several times too long."""
    target = media_root / "vbr-no-toc.mp3"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-t", "20",
         "-i", "anullsrc=r=16000:cl=mono", "-i", str(lj_recording.path),
         "-filter_complex", "[0][1]concat=n=2:v=0:a=1", "-ac", "1", "-ar", "16000",
         "-c:a", "libmp3lame", "-q:a", "2", "-write_xing", "0", str(target)],
        check=True, timeout=120,
    )  # fmt: skip
    true_s = 20 + lj_recording.duration_s

    status, out = await post(service_url, {"media_url": f"{media_url}/vbr-no-toc.mp3"})
    assert status == 200, out
    assert out["input_duration_sec"] == pytest.approx(true_s, abs=2.0)
    assert_well_formed(out, out["input_duration_sec"])
    assert wer(lj_recording.reference, out["text"]) <= 0.08


async def test_metrics_show_chunk_latency_and_endpoint_health(
    service_url: str, media_url: str, triton_grpc_url: str
) -> None:
    status, _ = await post(service_url, {"media_url": f"{media_url}/speech/jfk.flac"})
    assert status == 200
    async with aiohttp.ClientSession() as session, session.get(f"{service_url}/metrics") as response:
        scraped = await response.text()
    assert f'longscribe_triton_endpoint_up{{endpoint="{triton_grpc_url}"}} 1.0' in scraped
    count = next(line for line in scraped.splitlines() if line.startswith("longscribe_chunk_inference_seconds_count"))
    assert float(count.split()[-1]) >= 1
