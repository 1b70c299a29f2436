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

The service runs as it is shared: with an API key (each path sends it) and
loopback media refused, so every path uploads.

    make bench-paths                        # or: .venv/bin/python -m bench.paths [--hours 2]
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
from pathlib import Path
from typing import Any

from orchestrator.common.net import free_port, wait_until_ready
from tests.corpus import Recording, repeated_recording, wer

from .harness import BENCH_KEY, save_results, serve_command

RESULTS = Path(__file__).resolve().parent / "results" / "paths.json"
SMALL_MP3 = ["-ar", "16000", "-ac", "1", "-b:a", "32k"]  # 2 hours in 28 MB
PAGE_TIMEOUT_S = 1800.0


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
        chooser = driver.find_element(By.ID, "file")
        driver.execute_script("arguments[0].hidden = false", chooser)
        chooser.send_keys(str(recording.path))
        while driver.find_element(By.ID, "downloads").get_attribute("hidden") is not None:
            if time.monotonic() - started > PAGE_TIMEOUT_S:
                raise TimeoutError(driver.find_element(By.ID, "status").text)
            time.sleep(1)
        wall_s = time.monotonic() - started
        shown = driver.execute_script(  # each item is <time> then <span>: the text is the span's
            "return Array.from(document.querySelectorAll('#segments li span')).map(s => s.textContent)"
        )
        return {"wall_s": wall_s, "segments": len(shown), "wer": wer(recording.reference, " ".join(shown))}
    finally:
        driver.quit()


def run(hours: float, work: Path) -> list[dict[str, Any]]:
    recording = repeated_recording(work, hours * 60, SMALL_MP3)
    port = free_port()
    service = subprocess.Popen(
        serve_command(port, keyed=True),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LONGSCRIBE_API_KEYS": json.dumps([BENCH_KEY])},  # loopback media stays refused
    )
    api = f"http://127.0.0.1:{port}"
    rows = []
    try:
        asyncio.run(wait_until_ready(f"{api}/readyz", service.poll, 300.0, "longscribe serve"))
        for path, send in (
            ("CLI (`longscribe transcribe --server`, upload)", cli_upload),
            ("Python client (`longscribe.Client`, upload)", python_client),
            ("OpenAI endpoint (official client, upload)", openai_upload),
            ("OpenAI endpoint, stream=True (official client, upload)", openai_stream),
            ("web page", web_page),
        ):
            row = send(api, recording)
            rows.append({"path": path, "audio_s": recording.duration_s, **row})
            print(f"{path}: {row['wall_s']:.0f} s", flush=True)
            save_results(RESULTS, rows)  # what is measured is kept if a later path fails
    finally:
        service.terminate()
        service.wait(timeout=120)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| path | audio | wall s | speedup | segments (stream: deltas) | WER | first delta after |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        first = f"{r['first_delta_s']:.0f} s" if r.get("first_delta_s") else "-"
        lines.append(
            f"| {r['path']} | {r['audio_s'] / 3600:.2f} h | {r['wall_s']:.0f} | {r['audio_s'] / r['wall_s']:.1f}x "
            f"| {r['segments']} | {100 * r['wer']:.1f} % | {first} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0, help="length of the recording")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args.hours, Path(tmp))
    print()
    print(table(rows))
    save_results(RESULTS, rows)


if __name__ == "__main__":
    main()
