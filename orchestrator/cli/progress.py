"""What the CLI draws while a job runs: a progress line per chunk, and with --verbose each segment as it
settles, as `whisper --verbose` prints them. Pure: records in, text out."""

from __future__ import annotations

from longscribe import Progress, Segment

BAR_WIDTH = 24


def clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress_line(progress: Progress) -> str:
    """`[######......]  1:02 / 4:01 audio  38.2x  ETA 0:05` from a job's progress."""
    done, total = progress.audio_done_sec, progress.audio_total_sec
    share = min(1.0, done / total) if total else 0.0
    filled = round(share * BAR_WIDTH)
    parts = [f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}]", f"{clock(done)} / {clock(total or 0)} audio"]
    if progress.speed:
        parts.append(f"{progress.speed:.1f}x")
    if progress.eta_sec is not None:
        parts.append(f"ETA {clock(progress.eta_sec)}")
    return "  ".join(parts)


def timestamp(seconds: float) -> str:
    """whisper's verbose times: `01:02.500`, with hours once there are any (`1:01:02.500`)."""
    millis = round(max(0.0, seconds) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    head = f"{hours:02d}:" if hours else ""
    return f"{head}{minutes:02d}:{secs:02d}.{millis:03d}"


def segment_line(segment: Segment) -> str:
    """`[00:01.000 --> 00:04.000] text`, as `whisper --verbose True` prints a segment."""
    return f"[{timestamp(segment.start)} --> {timestamp(segment.end)}] {segment.text.strip()}"
