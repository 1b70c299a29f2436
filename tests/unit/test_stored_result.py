"""A stored transcript is read back in pieces: any cut of its bytes (inside a character too) gives the same
segments and fields as parsing it whole, and each format renders from it as from the whole answer."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis
from redis.exceptions import RedisError

from orchestrator.assemble import final
from orchestrator.assemble.final import PartMissing
from orchestrator.assemble.progress import ChunkPart
from orchestrator.formats import writers
from orchestrator.jobs import checkpoints
from orchestrator.jobs.records import GROUP, QUEUE, JobSpec, result_key, staged_key
from orchestrator.jobs.store import JobStore, StagedResultLost
from orchestrator.jobs.stored import PIECE_BYTES, SegmentReader, stored, with_partial, with_result, with_result_size
from orchestrator.jobs.transitions import CHECKPOINT_GRACE_S, Lease
from orchestrator.jobs.worker import ensure_group
from orchestrator.schemas import Segment, SubtitleLayout, TranscribeOutput, TranscribeRequest, WordOut

from .test_final_assembly import CHUNK_S, held_at_once, parts_for

OUTPUT = TranscribeOutput(
    segments=[
        Segment(
            start_time_sec=i * 2.0,
            end_time_sec=i * 2.0 + 1.5,
            text=f'Grüße {i}, "quoted" 東京\n<i>x</i>',
            words=[WordOut(word="Grüße", start_time_sec=i * 2.0, end_time_sec=i * 2.0 + 0.5, probability=0.9)],
            avg_logprob=-0.25,
            confidence=0.8,
        )
        for i in range(300)
    ],
    input_duration_sec=600.0,
    processing_duration_sec=12.5,
    speedup=48.0,
    text="Grüße 東京 " * 50,
    language="english",
    language_code="en",
)


def read_in(data: bytes, size: int) -> tuple[list[Segment], SegmentReader]:
    reader, segments = SegmentReader(), []
    for start in range(0, len(data), size):
        reader.feed(data[start : start + size])
        segments += reader.segments_parsed()
    reader.feed(b"", final=True)
    segments += reader.segments_parsed()
    return segments, reader


async def running_job(store: JobStore, request: TranscribeRequest) -> tuple[str, Lease]:
    """A job submitted, taken by worker-1 and admitted: running, as a worker holds it."""
    await ensure_group(store)
    job_id = await store.submit(JobSpec(request=request))
    [(_, [(entry_id, _)])] = await store.client.xreadgroup(GROUP, "worker-1", {QUEUE: ">"}, count=1)
    lease = Lease(job_id, entry_id, "worker-1")
    assert await store.admit(lease, "host:1", 5) == "ok"
    return job_id, lease


@pytest.mark.parametrize("size", [1, 7, 1000, 64 * 1024])
def test_any_cut_of_the_stored_bytes_reads_back_the_same_answer(size: int) -> None:
    data = OUTPUT.to_json().encode()
    segments, reader = read_in(data, size)
    assert segments == OUTPUT.segments
    assert reader.rest().model_dump(exclude={"segments"}) == OUTPUT.model_dump(exclude={"segments"})


@pytest.mark.parametrize("fmt", ["json", "srt", "vtt", "tsv"])
def test_each_format_renders_from_the_segments_read_one_by_one_as_from_the_whole(fmt: str) -> None:
    reader = SegmentReader()
    reader.feed(OUTPUT.to_json().encode(), final=True)
    layout = SubtitleLayout(max_line_width=20, max_line_count=2)
    if fmt == "json":
        pieces = writers.streamed_json(reader.segments(), reader.rest, verbose=False)
    else:
        pieces = writers.segment_pieces(reader.segments(), fmt, layout)
    assert "".join(pieces) == writers.render(OUTPUT, fmt, layout)


def test_a_segment_asked_for_before_it_is_read_is_a_bug_said_so() -> None:
    reader = SegmentReader()
    reader.feed(OUTPUT.to_json().encode()[:50])
    with pytest.raises(RuntimeError):
        list(reader.segments())


async def test_a_jobs_end_writes_the_transcript_from_its_checkpoints_in_pieces_and_again_if_redis_lost_them(
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, ttl_s=600, max_queued=10, retry_after_s=1)
    try:
        job_id, lease = await running_job(store, TranscribeRequest(media_url="https://example.com/a.mp3"))
        parts = parts_for(250, 2, True, CHUNK_S)  # with words: about 350 KB of JSON, several pieces
        for part in parts:
            assert await store.save_checkpoint(lease, part) == "ok"

        async def read(index: int) -> ChunkPart | None:
            return await checkpoints.read(client, job_id, index)

        assembled = await final.assemble(read, len(parts), parts[-1].decoded_end_s, True, time.monotonic())
        expected = (await assembled.output()).to_json()
        assert len(expected) > 4 * PIECE_BYTES

        real_run = store.scripts.finish

        async def staged_lost(*args: Any, **kwargs: Any) -> Any:  # Redis restarted between the pieces and the end
            await client.delete(staged_key(job_id))
            return await real_run(*args, **kwargs)

        store.scripts.finish = staged_lost
        with pytest.raises(StagedResultLost):
            await store.finish(lease, "succeeded", output=assembled)
        store.scripts.finish = real_run
        assert await store.finish(lease, "succeeded", output=assembled) == "ok", "tried again: written again"
        assert await client.get(result_key(job_id)) == expected
        assert not await client.exists(staged_key(job_id))
        found = await stored(client, job_id)
        assert found is not None and b"".join([piece async for piece in found.raw()]) == expected.encode()

        # GET /v1/jobs/{id}: the job's fields with the stored bytes passed through as "result", in pieces
        head = await store.to_json(job_id)
        pieces = [piece async for piece in with_result(head, found)]
        body = b"".join(pieces)
        assert len(pieces) > 4 and max(map(len, pieces)) <= PIECE_BYTES, "never the whole transcript at once"
        assert len(body) == with_result_size(head, found)
        assert json.loads(body) == head | {"result": json.loads(expected)}
        reread = TranscribeOutput.model_validate_json(await client.get(result_key(job_id)))  # what clients parse
        assert json.loads(reread.to_json()) == json.loads(body)["result"]
    finally:
        await client.aclose()


async def test_a_running_jobs_partial_is_its_finished_prefix_written_a_chunk_at_a_time(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, ttl_s=600, max_queued=10, retry_after_s=1)
    try:
        request = TranscribeRequest.model_validate(
            {"media_url": "https://example.com/a.mp3", "params": {"word_timestamps": True}}
        )
        job_id, lease = await running_job(store, request)
        parts = parts_for(60, 3, True, CHUNK_S)
        assert await store.partial(job_id) is None, "nothing finished yet"
        for part in parts[1:]:  # every chunk but the first: no prefix yet
            assert await store.save_checkpoint(lease, part) == "ok"
        assert await store.partial(job_id) is None, "chunk 0 is not done: there is no prefix"
        assert await store.save_checkpoint(lease, parts[0]) == "ok"
        await client.hdel(checkpoints.chunks_key(job_id), "30")  # chunk 30 is still running

        partial = await store.partial(job_id)
        assert partial is not None and partial.count == 30 and partial.input_duration_sec == parts[29].chunk.end_s
        head = await store.to_json(job_id)
        assert head["status"] == "running" and "partial" not in head, "the route streams it beside the head"
        pieces = [piece async for piece in with_partial(head, partial)]
        assert len(pieces) > 4, "a chunk's segments at a time, never the transcript so far whole"

        held, _ = held_at_once(parts[:30])
        expected = await (await final.assemble(held, 30, parts[29].chunk.end_s, True, time.monotonic())).output()
        body = json.loads(b"".join(pieces))
        assert body == head | {
            "partial": json.loads(expected.to_json()) | {"processing_duration_sec": 0.0, "speedup": 0.0}
        }
        assert any(s["words"] for s in body["partial"]["segments"])

        # the job ends while a poll is writing its partial: the checkpoints outlive it a little, so it completes
        writing = (await store.partial(job_id)).json_pieces()  # type: ignore[union-attr]
        first = await anext(writing)
        assert await store.finish(lease, "cancelled") == "ok"
        assert 0 < await client.ttl(checkpoints.chunks_key(job_id)) <= CHECKPOINT_GRACE_S
        await client.expire(checkpoints.chunks_key(job_id), 2)  # a slow reader: the grace nearly spent
        rest = "".join([piece async for piece in writing])
        assert await client.ttl(checkpoints.chunks_key(job_id)) > 2, "each read renews the grace"
        assert json.loads(first + rest) == body["partial"]
    finally:
        await client.aclose()


@pytest.mark.parametrize("fault", [PartMissing("chunk 3 is gone"), RedisError("connection lost")])
async def test_an_answer_whose_checkpoints_go_after_its_head_ends_short_without_a_traceback(
    fault: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the head no status can be sent: the client sees a cut answer, the log one line, not a traceback."""
    from aiohttp import ClientPayloadError, ClientSession, web

    from orchestrator.api import job_routes
    from orchestrator.common.net import serving

    async def pieces() -> AsyncIterator[bytes]:
        yield b'{"id": "j1", "partial": {"segments": ['
        raise fault

    async def handler(request: web.Request) -> web.StreamResponse:
        return await job_routes._stream(request, pieces())

    app = web.Application()
    app.router.add_get("/job", handler)
    async with serving(app) as base, ClientSession() as session:
        async with session.get(f"{base}/job") as response:
            assert response.status == 200
            with pytest.raises(ClientPayloadError):
                await response.read()
    assert any("cut short after its head" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records), "no traceback"
