"""Hours through the paths users take: the CLI and the Python client (uploads), the OpenAI endpoint and the
web page.

Runs `longscribe serve` as a child (managed Triton and Redis), builds a
2-hour MP3 of real speech, and sends it
- as an upload by `longscribe transcribe <file> --server ...` (a child process),
- as an upload by the Python client (`longscribe.Client(...).transcribe(path)`),
- as an upload through the official `openai` client to `/v1/audio/transcriptions`
  (`verbose_json`), and again with `stream=True` (OpenAI's `transcript.text.delta`
  events as chunks settle, then `transcript.text.done`: the time to the first delta
  and the number of deltas are reported too), and
- dropped on the web page in headless Chromium (Debian's, through
  selenium), watched until the page offers the downloads,
then scores what each returned or showed against the reference.

Then who spoke when, on a 2-hour conversation of three readers taking turns of
3-15 s (`tests/conversations.py`'s "readers", turns known to the sample): the
same conversation
- by REST `/v1/transcribe` with `params.diarize` (its media on a host the
  service is told it may fetch from, as an operator lists one),
- through the official `openai` client with `response_format="diarized_json"`
  (an upload), and
- on the web page with its "who spoke when" box ticked,
each scored by the speakers it found and DER (0.25 s collar) against the turns.
Diarized jobs and their SSE at 1 h and 10 h are `make bench-speakers`'s.

The service runs as it is shared: with an API key (each path sends it) and
loopback media refused (but for 127.0.0.2, the one media host it is told of),
so every path but REST's uploads.

    make bench-paths                        # or: .venv/bin/python -m bench.paths [--hours 2] [--only speakers]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from orchestrator.common.net import free_port, wait_until_ready
from tests.conversations import SPEAKER_SETS, Turn, der, turns_of, write_conversation
from tests.corpus import Recording, repeated_recording, wer
from tests.keyed_service import MEDIA_HOST, allowed_media

from .harness import BENCH_AUTH, BENCH_KEY, save_results, serve_command

RESULTS = Path(__file__).resolve().parent / "results" / "paths.json"
SMALL_MP3 = ["-ar", "16000", "-ac", "1", "-b:a", "32k"]  # 2 hours in 28 MB
PAGE_TIMEOUT_S = 1800.0
PAGE_JSON = "return fetch(`/v1/jobs/${jobId}/transcript?format=json`, {headers: headers()}).then(r => r.json())"


@dataclass(frozen=True)
class Conversation:
    """A conversation written to an MP3, with who speaks when."""

    path: Path
    turns: list[Turn]
    duration_s: float


def who_spoke_when(spoken: Conversation, starts: list[float], ends: list[float], speakers: list[str]) -> dict[str, Any]:
    """The speakers an answer found and its DER (0.25 s collar) against the conversation's turns."""
    score = der(spoken.turns, turns_of(starts, ends, speakers))
    return {"speakers": len(set(speakers)), "der": score.der, "confusion": score.confusion_s / score.total_s}


def cli_upload(api: str, recording: Recording) -> dict[str, Any]:
    started = time.monotonic()
    command = [sys.executable, "-m", "orchestrator.cli", "transcribe", str(recording.path), "--server", api]
    done = subprocess.run(
        [*command, "-q", "-f", "json"],
        capture_output=True,
        check=True,
        timeout=PAGE_TIMEOUT_S,
        env={**os.environ, "LONGSCRIBE_API_KEY": BENCH_KEY},
    )
    wall_s = time.monotonic() - started
    out = json.loads(done.stdout)
    return {"wall_s": wall_s, "segments": len(out["segments"]), "wer": wer(recording.reference, out["text"])}


def python_client(api: str, recording: Recording) -> dict[str, Any]:
    import longscribe

    started = time.monotonic()
    with longscribe.Client(api, api_key=BENCH_KEY) as client:
        out = client.transcribe(recording.path)
    wall_s = time.monotonic() - started
    return {"wall_s": wall_s, "segments": len(out.segments), "wer": wer(recording.reference, out.text)}


def openai_upload(api: str, recording: Recording) -> dict[str, Any]:
    import openai

    client = openai.OpenAI(base_url=f"{api}/v1", api_key=BENCH_KEY, timeout=PAGE_TIMEOUT_S)
    started = time.monotonic()
    with recording.path.open("rb") as media:
        out = client.audio.transcriptions.create(model="whisper-1", file=media, response_format="verbose_json")
    wall_s = time.monotonic() - started
    return {"wall_s": wall_s, "segments": len(out.segments or []), "wer": wer(recording.reference, out.text)}


def openai_stream(api: str, recording: Recording) -> dict[str, Any]:
    """stream=True: the deltas must add up to the done event's text, which is scored."""
    import openai

    client = openai.OpenAI(base_url=f"{api}/v1", api_key=BENCH_KEY, timeout=PAGE_TIMEOUT_S)
    started = time.monotonic()
    first_delta_s, deltas, text = None, [], None
    with recording.path.open("rb") as media:
        for event in client.audio.transcriptions.create(model="whisper-1", file=media, stream=True):
            if event.type == "transcript.text.delta":
                first_delta_s = first_delta_s or time.monotonic() - started
                deltas.append(event.delta)
            elif event.type == "transcript.text.done":
                text = event.text
    wall_s = time.monotonic() - started
    if text is None or len(deltas) < 2:
        raise RuntimeError(f"the stream ended with {len(deltas)} deltas and {'a' if text else 'no'} done event")
    return {
        "wall_s": wall_s,
        "segments": len(deltas),
        "wer": wer(recording.reference, text),
        "first_delta_s": first_delta_s,
        "deltas_match_done": wer(text, "".join(deltas)) < 0.001,
    }


def web_page(api: str, recording: Recording) -> dict[str, Any]:
    wall_s, shown, _ = page(api, recording.path, diarize=False)
    return {"wall_s": wall_s, "segments": len(shown), "wer": wer(recording.reference, " ".join(shown))}


def web_page_diarized(api: str, spoken: Conversation) -> dict[str, Any]:
    """The page's box ticked: DER of the labels it shows (with the ends of the JSON it drew them from)."""
    wall_s, _, segments = page(api, spoken.path, diarize=True)
    starts, ends = [s["start_time_sec"] for s in segments], [s["end_time_sec"] for s in segments]
    return {
        "wall_s": wall_s,
        "segments": len(segments),
        **who_spoke_when(spoken, starts, ends, [s.get("speaker") or "none" for s in segments]),
    }


def page(api: str, media: Path, diarize: bool) -> tuple[float, list[str], list[dict[str, Any]]]:
    """Drop `media` on the web page (its box ticked with `diarize`) and wait for the downloads: the wall time,
    the texts it shows and, diarized, the segments with the speakers it shows (an error if they differ)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    try:
        started = time.monotonic()
        driver.get(f"{api}/")
        driver.find_element(By.ID, "key").send_keys(BENCH_KEY)
        if diarize:
            driver.find_element(By.ID, "diarize").click()
        chooser = driver.find_element(By.ID, "file")
        driver.execute_script("arguments[0].hidden = false", chooser)
        chooser.send_keys(str(media))
        while driver.find_element(By.ID, "downloads").get_attribute("hidden") is not None:
            if time.monotonic() - started > PAGE_TIMEOUT_S:
                raise TimeoutError(driver.find_element(By.ID, "status").text)
            time.sleep(1)
        wall_s = time.monotonic() - started
        shown = driver.execute_script(  # each item is <time>, the speaker's <span> if any, then the text's <span>
            "return Array.from(document.querySelectorAll('#segments li span:not(.speaker)')).map(s => s.textContent)"
        )
        if not diarize:
            return wall_s, shown, []
        labels = driver.execute_script(
            "return Array.from(document.querySelectorAll('#segments li'))"
            ".map(li => li.querySelector('.speaker')?.dataset.speaker)"
        )
        segments = driver.execute_script(PAGE_JSON)["segments"]
        if labels != [s.get("speaker") for s in segments]:
            raise RuntimeError("the page shows other speakers than its transcript's JSON has")
        return wall_s, shown, segments
    finally:
        driver.quit()


def openai_diarized(api: str, spoken: Conversation) -> dict[str, Any]:
    import openai

    client = openai.OpenAI(base_url=f"{api}/v1", api_key=BENCH_KEY, timeout=PAGE_TIMEOUT_S)
    started = time.monotonic()
    with spoken.path.open("rb") as media:
        out = client.audio.transcriptions.create(
            model="gpt-4o-transcribe-diarize", file=media, response_format="diarized_json"
        )
    wall_s = time.monotonic() - started
    segments = out.segments
    return {
        "wall_s": wall_s,
        "segments": len(segments),
        **who_spoke_when(spoken, [s.start for s in segments], [s.end for s in segments], [s.speaker for s in segments]),
    }


def rest_diarized(api: str, spoken: Conversation) -> dict[str, Any]:
    """POST /v1/transcribe with params.diarize, its media on MEDIA_HOST (the host the service may fetch from)."""

    async def post() -> tuple[float, list[dict[str, Any]]]:
        async with allowed_media(spoken.path.parent) as media_base, aiohttp.ClientSession() as session:
            body = {"media_url": f"{media_base}/{spoken.path.name}", "params": {"diarize": True}}
            started = time.monotonic()
            timeout = aiohttp.ClientTimeout(total=PAGE_TIMEOUT_S)
            async with session.post(f"{api}/v1/transcribe", json=body, headers=BENCH_AUTH, timeout=timeout) as got:
                if got.status != 200:
                    raise RuntimeError(f"/v1/transcribe answered {got.status}: {await got.text()}")
                answer = await got.json()
            return time.monotonic() - started, answer["segments"]

    wall_s, segments = asyncio.run(post())
    starts, ends = [s["start_time_sec"] for s in segments], [s["end_time_sec"] for s in segments]
    return {
        "wall_s": wall_s,
        "segments": len(segments),
        **who_spoke_when(spoken, starts, ends, [s.get("speaker") or "none" for s in segments]),
    }


PLAIN = (
    ("CLI (`longscribe transcribe --server`, upload)", cli_upload),
    ("Python client (`longscribe.Client`, upload)", python_client),
    ("OpenAI endpoint (official client, upload)", openai_upload),
    ("OpenAI endpoint, stream=True (official client, upload)", openai_stream),
    ("web page", web_page),
)
DIARIZED = (
    ("REST /v1/transcribe, diarize (media URL)", rest_diarized),
    ("OpenAI endpoint, diarized_json (official client, upload)", openai_diarized),
    ("web page, who spoke when ticked", web_page_diarized),
)


def conversation(work: Path, hours: float) -> Conversation:
    path = work / "readers.mp3"
    turns = write_conversation(path, SPEAKER_SETS["readers"], hours * 3600, SMALL_MP3)
    return Conversation(path, turns, turns[-1].end_s)


def run(hours: float, work: Path, only: str | None, match: str = "", results: Path = RESULTS) -> list[dict[str, Any]]:
    sends: list[tuple[str, Callable[[str, Any], dict[str, Any]], Recording | Conversation]] = []
    if only != "speakers":
        recording = repeated_recording(work, hours * 60, SMALL_MP3)
        sends += [(path, send, recording) for path, send in PLAIN if match in path]
    if only != "plain":
        spoken = conversation(work, hours)
        sends += [(path, send, spoken) for path, send in DIARIZED if match in path]
    port = free_port()
    service = subprocess.Popen(
        serve_command(port, keyed=True),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={  # loopback media stays refused, but for MEDIA_HOST (REST's media server)
            **os.environ,
            "LONGSCRIBE_API_KEYS": json.dumps([BENCH_KEY]),
            "LONGSCRIBE_ALLOWED_MEDIA_HOSTS": json.dumps([MEDIA_HOST]),
        },
    )
    api = f"http://127.0.0.1:{port}"
    rows = []
    try:
        asyncio.run(wait_until_ready(f"{api}/readyz", service.poll, 300.0, "longscribe serve"))
        for path, send, media in sends:
            row = send(api, media)
            rows.append({"path": path, "audio_s": media.duration_s, **row})
            print(f"{path}: {row['wall_s']:.0f} s", flush=True)
            save_results(results, rows)  # what is measured is kept if a later path fails
    finally:
        service.terminate()
        service.wait(timeout=120)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| path | audio | wall s | speedup | segments (stream: deltas) | WER | first delta after | speakers | DER |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        first = f"{r['first_delta_s']:.0f} s" if r.get("first_delta_s") else "-"
        error = f"{100 * r['wer']:.1f} %" if "wer" in r else "-"
        speakers = f"{r['speakers']} of 3" if "speakers" in r else "-"
        scored = f"{100 * r['der']:.1f} % (confusion {100 * r['confusion']:.1f} %)" if "der" in r else "-"
        lines.append(
            f"| {r['path']} | {r['audio_s'] / 3600:.2f} h | {r['wall_s']:.0f} | {r['audio_s'] / r['wall_s']:.1f}x "
            f"| {r['segments']} | {error} | {first} | {speakers} | {scored} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0, help="length of the recordings")
    parser.add_argument(
        "--only", choices=["plain", "speakers"], help="only the plain paths, or only who spoke when (default: both)"
    )
    parser.add_argument("--match", default="", help="only the paths whose name holds this text (e.g. 'web page')")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"where the JSON goes (default {RESULTS})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args.hours, Path(tmp), args.only, args.match, args.results)
    print()
    print(table(rows))
    save_results(args.results, rows)


if __name__ == "__main__":
    main()
