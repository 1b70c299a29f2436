"""Where a job's parts live: messages about a job carry these, never the transcript itself."""

from __future__ import annotations


def links(job_id: str) -> dict[str, str]:
    base = f"/v1/jobs/{job_id}"
    return {"self": base, "events": f"{base}/events", "transcript": f"{base}/transcript"}
