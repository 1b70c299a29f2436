"""What a job keeps in Redis reads back as it was written: checkpoints whole, progress sensible."""

from __future__ import annotations

import json
import time

from longscribe_core.segments import ChunkResult, Segment, Word
from orchestrator.assemble.progress import ChunkPart
from orchestrator.jobs.checkpoints import RedisCheckpoints, decode_part, encode_part
from orchestrator.jobs.records import JobSpec
from orchestrator.jobs.store import progress_json
from orchestrator.plan.macro import MacroChunk
from orchestrator.schemas import TranscribeRequest, UploadedMedia, UploadRequest

PART = ChunkPart(
    chunk=MacroChunk(1, 30.0, 61.5, read_start_s=29.0),
    result=ChunkResult(
        segments=(
            Segment(0.5, 2.0, " Hello there.", words=(Word(0.5, 1.0, " Hello", 0.9), Word(1.1, 2.0, " there.", 0.8))),
        ),
        language="en",
    ),
    decoded_end_s=62.0,
    n_samples=528_000,
    reached_end=False,
)


def test_a_checkpoint_reads_back_equal_to_the_part_written() -> None:
    assert decode_part(encode_part(PART)) == PART


def test_a_checkpoint_is_carried_over_only_for_the_same_cut_and_then_not_held() -> None:
    moved = RedisCheckpoints(kept={1: PART}, write=None, fetch=None)  # type: ignore[arg-type]
    assert moved.take(MacroChunk(1, 31.0, 61.5)) is None, "planned differently: transcribed again"
    kept = RedisCheckpoints(kept={1: PART}, write=None, fetch=None)  # type: ignore[arg-type]
    assert kept.take(MacroChunk(2, 61.5, 90.0)) is None
    assert kept.take(MacroChunk(1, 30.0, 61.5)) == PART
    assert kept.kept == {}, "handed out once: the run reads it back from Redis when it writes the transcript"
    assert kept.resumed == {1} and kept.resumed_s == 31.5


async def test_a_checkpoint_redis_did_not_take_is_held_by_the_run_and_read_back_from_there() -> None:
    fetched: list[int] = []

    async def write(part: ChunkPart) -> bool:
        return False  # Redis stayed away

    async def fetch(index: int) -> ChunkPart | None:
        fetched.append(index)
        return None

    saved = RedisCheckpoints(kept={}, write=write, fetch=fetch)
    await saved.save(PART)
    assert await saved.read(1) == PART and not fetched
    assert await saved.read(0) is None and fetched == [0], "lost: the run transcribes it again"


def test_a_job_spec_holds_a_url_or_an_upload_and_reads_back_as_such() -> None:
    url = JobSpec(request=TranscribeRequest(media_url="https://example.com/a.mp3"), webhook_url=None)
    upload = JobSpec(request=UploadRequest(upload=UploadedMedia(path="/uploads/x.wav", filename="x.wav")))
    assert isinstance(JobSpec.model_validate_json(url.model_dump_json()).request, TranscribeRequest)
    assert JobSpec.model_validate_json(upload.model_dump_json()) == upload


def test_progress_counts_speed_from_this_run_only_and_no_eta_once_finished() -> None:
    now = time.time()
    progress = {"chunks_done": 4, "chunks_total": 8, "audio_done_s": 120.0, "duration_s": 240.0}
    running = {
        "status": "running",
        "started": str(now - 10),
        "progress": json.dumps({**progress, "chunks_resumed": 2, "resumed_audio_s": 60.0}),
    }
    shown = progress_json(running)
    assert shown["chunks_resumed"] == 2 and shown["speed"] is not None
    assert 5.0 <= shown["speed"] <= 6.5, "60 s of audio done by this run in about 10 s"
    assert shown["eta_sec"] is not None and shown["eta_sec"] > 0
    ended = progress_json({**running, "status": "succeeded", "finished": str(now)})
    assert ended["eta_sec"] is None and ended["audio_done_sec"] == 240.0
