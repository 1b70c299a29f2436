"""Every orchestrator setting in one place, read once from LONGSCRIBE_* env variables."""

from __future__ import annotations

import sys
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, IPvAnyAddress, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DERIVED = -1  # a capacity field left at this is derived from chunks_per_triton
QUEUE_ROUNDS = 4  # a full queue holds this many rounds of the requests running at once


class Settings(BaseSettings):
    """Defaults suit one CPU machine; each can be set as LONGSCRIBE_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="LONGSCRIBE_", frozen=True)

    host: str = Field("127.0.0.1", description="address the REST API binds")
    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json: one object per line; both show each line's request_id or job_id"
    )
    port: int = Field(8080, description="port of the REST API")
    triton_grpc_urls: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:8001"],
        description="Triton gRPC endpoints (host:port); macro chunks spread over all of them",
    )
    triton_discovery_dns: str = Field(
        "",
        description="host:port of a headless Service; every address it resolves to is a Triton endpoint "
        "(replaces triton_grpc_urls), refreshed every triton_discovery_interval_sec",
    )
    triton_discovery_interval_sec: float = Field(10.0, gt=0, description="how often the DNS name is resolved again")
    micro_chunk_model: str = Field("micro_chunker", description="Triton model that takes a macro chunk")
    whisper_model: str = Field(
        "whisper",
        description="Triton model of the first (default) Whisper model; each further one is `<this>-<its name>`",
    )
    speaker_model: str = Field(
        "speaker_encoder",
        description="Triton model that embeds a voice (params.diarize), loaded where model_repository holds it; "
        "a service whose Triton does not serve it refuses diarize with 422; empty: no diarization",
    )
    known_speaker_similarity: float = Field(
        0.7,
        ge=-1.0,
        le=1.0,
        description="cosine similarity above which a speaker found is taken for a known speaker's reference voice",
    )
    models: list[str] = Field(
        default_factory=list,
        description="Whisper models served (JSON list), each `source` or `name=source`: a packaged name (tiny.en, "
        "base), one of faster-whisper's (small, large-v3, turbo, ...), a Hugging Face id of a CTranslate2 "
        "Whisper repository (Org/repo, `@revision` pins it) or a CTranslate2 directory. Requests pick one "
        "by name; the first is the default. Empty: whisper_weights, else tiny.en",
    )
    # Capacity: one number, chunks_per_triton, sizes everything (docs/settings.md, "Capacity"). The
    # three fields after it derive from it unless set; micro_chunker's instance count is checked against it.
    chunks_per_triton: int = Field(
        3,
        ge=1,
        description="macro chunks one Triton endpoint works on at once, from all orchestrators together: "
        "micro_chunker's instance count (one chunk each); >1 lets whisper batch across chunks",
    )
    orchestrator_replicas: int = Field(
        1, ge=1, description="orchestrators sending to the same Triton endpoints; each takes an equal share"
    )
    chunks_in_flight_per_endpoint: int = Field(
        DERIVED,
        validate_default=True,
        ge=1,
        description="this orchestrator's macro chunks in flight per endpoint; "
        "default chunks_per_triton // orchestrator_replicas (at least 1)",
    )
    max_requests_in_flight: int = Field(
        DERIVED,
        validate_default=True,
        ge=1,
        description="requests transcribed at once by this orchestrator; default chunks_in_flight_per_endpoint + 1 "
        "(short media keep the chunk slots full while one more request is probed and planned)",
    )
    max_queued_requests: int = Field(
        DERIVED,
        validate_default=True,
        ge=0,
        description=f"requests waiting for a slot, beyond them 429; default {QUEUE_ROUNDS} x max_requests_in_flight",
    )
    silence_search_window_sec: float = Field(
        10.0, gt=0, description="a macro cut moves to the quietest point within this window around it"
    )
    max_macro_chunk_size_sec: float = Field(3600.0, gt=0, description="largest macro_chunk_size_sec accepted")
    max_media_duration_sec: float = Field(12 * 3600.0, gt=0, description="longer media is refused")
    request_timeout_sec: float = Field(
        7200.0, gt=0, description="limit for one whole request; past it the request is cancelled (504)"
    )
    retry_after_sec: int = Field(5, ge=1, description="Retry-After sent with a 429")
    shutdown_grace_sec: float = Field(
        120.0, ge=0, description="on SIGTERM, time in-flight requests get to finish before they are cancelled"
    )
    max_upload_bytes: int = Field(2 * 1024**3, gt=0, description="largest file accepted by /v1/audio/transcriptions")
    max_form_parts: int = Field(
        64, ge=1, description="parts (fields and the file) one form may have; beyond, 413 before more is read"
    )
    max_form_field_bytes: int = Field(
        64 * 1024, ge=1, description="largest form field other than `file` (params JSON, prompt); beyond, 413"
    )
    upload_dir: Path | None = Field(
        None,
        description="where uploads wait while transcribed; empty: the system temp dir. With several "
        "orchestrators, a volume all of them mount: an uploaded job runs on whichever worker takes it",
    )
    job_ttl_sec: float = Field(3600.0, gt=0, description="how long a finished job's result is kept")
    webhook_secret: str = Field("", description="HMAC-SHA256 key that signs job webhooks; empty: unsigned")
    sse_keepalive_sec: float = Field(
        15.0, gt=0, le=15.0, description="a comment on every idle event stream this often, so proxies keep it open"
    )
    loop_lag_probe_sec: float = Field(
        0.1, gt=0, description="how often a timer checks the event loop is free (longscribe_event_loop_lag_*)"
    )
    transcript_piece_bytes: int = Field(
        64 * 1024, gt=0, description="a streamed transcript is written in pieces of about this size"
    )
    # API keys (docs/security.md, "API keys"). Auth is on when any key below is configured. A keys file that is
    # missing or holds no key refuses to start: it never silently means "auth off". Auth off is a stated
    # choice: no_auth (`longscribe serve --no-auth`), or LONGSCRIBE_API_KEYS set to empty ("" or []).
    # With nothing configured at all, `longscribe serve` refuses to start (saying how to set keys or --no-auth);
    # `longscribe transcribe` without --server starts its own service with a key only that process knows.
    api_keys: list[str] | None = Field(
        None, description='accepted API keys (JSON list); set to "" or [] (and no file): auth off, on purpose'
    )
    api_keys_file: Path | None = Field(None, description="a file of API keys, one per line (# comments)")
    admin_api_keys: list[str] = Field(
        default_factory=list, description="keys that may see, follow, fetch and cancel every job (JSON list)"
    )
    admin_api_keys_file: Path | None = Field(None, description="a file of admin keys, one per line (# comments)")
    no_auth: bool = Field(False, description="serve without API keys, on purpose; refused when keys are configured")
    max_queued_jobs_per_key: int = Field(
        16, ge=0, description="jobs one API key may have waiting to start across the fleet (429 beyond); 0: no limit"
    )
    max_event_streams_per_key: int = Field(
        32, ge=0, description="event streams one API key may hold open on this orchestrator (429 beyond); 0: no limit"
    )
    chunk_timeout_sec: float = Field(900.0, gt=0, description="limit for one macro chunk's inference")
    media_timeout_sec: float = Field(30.0, gt=0, description="limit for the range check and ffprobe")
    allowed_media_hosts: list[str] = Field(
        default_factory=list,
        description="hosts, addresses or CIDR networks media may come from although private, loopback or "
        "link-local (e.g. 10.0.0.0/8, media.internal); public addresses are always allowed",
    )
    allowed_webhook_hosts: list[str] = Field(
        default_factory=list,
        description="hosts, addresses or CIDR networks a webhook_url may point to although private, loopback or "
        "link-local; checked at submit (422) and at each delivery. Separate from allowed_media_hosts",
    )
    max_redirects: int = Field(5, ge=0, le=20, description="redirects followed from media_url, each checked")
    media_read_retries: int = Field(
        3, ge=0, description="times one read resumes after the media server drops the connection"
    )
    ffmpeg_bin: str = Field("ffmpeg", description="FFmpeg executable")
    ffprobe_bin: str = Field("ffprobe", description="ffprobe executable")
    # Jobs: their state, events, results and checkpoints live in one Redis that every orchestrator shares
    redis_url: str = Field(
        "",
        description="redis://host:port/db shared by every orchestrator (/readyz PINGs it); empty: `longscribe "
        "serve` starts and stops a local redis-server with its data in redis_dir",
    )

    # The managed Triton of `longscribe serve`
    model_repository: Path = Field(REPO_ROOT / "model_repository", description="Triton model repository")
    triton_models: list[str] = Field(
        default_factory=lambda: ["whisper", "micro_chunker", "speaker_encoder"],
        description="models Triton loads (speaker_encoder: diarization's voices; one idle instance when unused; "
        "left out where model_repository lacks it)",
    )
    whisper_weights: str = Field(
        "",
        description="one Whisper model, as an entry of `models` (which wins when set); kept for older setups",
    )
    triton_cpus: list[int] = Field(
        default_factory=list, description="CPUs the managed Triton may run on (its share of a machine); empty: all"
    )
    triton_allocator: Literal["jemalloc", "tcmalloc", "glibc"] = Field(
        "jemalloc",
        description="malloc of the managed Triton and its stubs, preloaded (glibc's own kept freed memory: Triton "
        "grew with the audio's length); one not installed falls back to glibc with fewer arenas",
    )
    triton_bind_address: IPvAnyAddress = Field(
        IPv4Address("127.0.0.1"),
        description="address the managed Triton's HTTP, gRPC and metrics ports bind; loopback keeps them off the "
        "network (0.0.0.0: every interface, e.g. for Prometheus on another host)",
    )
    triton_http_port: int = Field(8000, description="managed Triton's HTTP port (0: a free one, picked again if taken)")
    triton_grpc_port: int = Field(8001, description="managed Triton's gRPC port (0: a free one, picked again if taken)")
    triton_metrics_port: int = Field(
        8002, description="managed Triton's metrics port (0: a free one, picked again if taken)"
    )
    triton_start_timeout_sec: float = Field(300.0, gt=0, description="time allowed for models to load")

    # Jobs: their state, events, results and checkpoints live in one Redis that every orchestrator shares
    redis_dir: Path = Field(
        default_factory=lambda: Path(sys.prefix) / "share" / "longscribe" / "redis",
        description="data of the managed redis-server (append-only: jobs survive a restart)",
    )
    redis_server_bin: str = Field("redis-server", description="the managed Redis's executable")
    job_workers: int = Field(
        4, ge=0, description="jobs this orchestrator runs at once (each under admission); 0: API only"
    )
    max_queued_jobs: int = Field(
        64, ge=0, description="jobs waiting to start across the fleet; beyond, POST /v1/jobs answers 429"
    )
    job_lease_sec: float = Field(
        30.0, gt=0, description="a running job whose worker has not renewed it this long is taken over by another"
    )
    job_max_attempts: int = Field(
        5, ge=1, description="times a job is started (takeovers and hand-backs included) before it fails"
    )
    webhook_retry_sec: float = Field(
        600.0, gt=0, description="how long a webhook is retried, with backoff, before it is given up"
    )
    redis_max_connections: int = Field(
        64, ge=2, description="Redis connections this orchestrator's pool opens at most; beyond, a caller waits"
    )
    redis_pool_timeout_sec: float = Field(
        30.0, gt=0, description="how long a caller waits for a free pooled Redis connection before a 503"
    )
    redis_retry_sec: float = Field(
        120.0, gt=0, description="how long a job's end and checkpoints are retried, with backoff, while Redis fails"
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _empty_means_no_keys(cls, value: Any) -> Any:
        """LONGSCRIBE_API_KEYS="" is the stated choice of no keys, like []."""
        return [] if isinstance(value, str) and not value.strip() else value

    @field_validator("chunks_in_flight_per_endpoint", "max_requests_in_flight", "max_queued_requests", mode="before")
    @classmethod
    def _derive_capacity(cls, value: Any, info: ValidationInfo) -> Any:
        """Fill a capacity field left at DERIVED from the fields above it (validated first, in order)."""
        if str(value) != str(DERIVED):
            return value
        known = info.data  # a field that failed validation is missing: this one then fails its own bound
        if info.field_name == "chunks_in_flight_per_endpoint":
            if {"chunks_per_triton", "orchestrator_replicas"} <= known.keys():
                return max(1, known["chunks_per_triton"] // known["orchestrator_replicas"])
        elif info.field_name == "max_requests_in_flight":
            if "chunks_in_flight_per_endpoint" in known:
                return known["chunks_in_flight_per_endpoint"] + 1
        elif "max_requests_in_flight" in known:
            return QUEUE_ROUNDS * known["max_requests_in_flight"]
        return value
