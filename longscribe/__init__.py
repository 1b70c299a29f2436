"""longscribe's Python API: a client for a longscribe service (`longscribe serve`, or one deployed).

    import longscribe

    client = longscribe.Client("http://127.0.0.1:8080")   # api_key: $LONGSCRIBE_API_KEY by default; close() it
    transcript = client.transcribe("talk.mp3", language="en")   # a local file is uploaded
    for segment in transcript.segments:
        print(f"[{segment.start:.2f} -> {segment.end:.2f}] {segment.text}")

    job = client.submit("https://example.com/talk.mp3")  # a URL is fetched by the service
    for event in job.events():                            # StatusEvent, ChunkEvent (progress, segments), EndEvent
        ...
    print(job.transcript("srt", max_line_width=42))

`AsyncClient` is the same API for asyncio. Failures are `longscribe.errors`
exceptions (ServiceUnreachable, APIError and its kinds, JobFailed), never
httpx's. This package needs only httpx and httpx-sse: it imports nothing of
the service (`orchestrator`), Triton or the models.
"""

from longscribe._version import __version__
from longscribe.client import AsyncClient, AsyncJob
from longscribe.errors import (
    APIError,
    AuthenticationError,
    JobFailed,
    LongscribeError,
    NotFound,
    Overloaded,
    ServiceUnreachable,
)
from longscribe.records import (
    ChunkEvent,
    EndEvent,
    ErrorDetail,
    JobEvent,
    JobState,
    Progress,
    Segment,
    StatusEvent,
    Summary,
    Transcript,
    Word,
)
from longscribe.sync import Client, Job

__all__ = [
    "APIError",
    "AsyncClient",
    "AsyncJob",
    "AuthenticationError",
    "ChunkEvent",
    "Client",
    "EndEvent",
    "ErrorDetail",
    "Job",
    "JobEvent",
    "JobFailed",
    "JobState",
    "LongscribeError",
    "NotFound",
    "Overloaded",
    "Progress",
    "Segment",
    "ServiceUnreachable",
    "StatusEvent",
    "Summary",
    "Transcript",
    "Word",
    "__version__",
]
