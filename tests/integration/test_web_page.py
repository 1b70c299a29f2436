"""The web page in headless Chromium: drop a file, watch it move, play a segment, download SRT.

Debian's chromium and chromedriver (installed by `make test`); Selenium drives
them, with the driver's path given, so nothing is downloaded at run time.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import srt

from orchestrator.api.app import create_app
from orchestrator.common.net import serving
from orchestrator.settings import Settings

from ..corpus import manifest, speech_dir, wer
from ..keyed_service import SERVICE_KEY
from ..media_servers import LOOPBACK
from ..redis_fleet import own_database
from ..wer_bounds import JFK_MAX_WER

pytestmark = pytest.mark.integration
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest_asyncio.fixture(scope="module")
async def page_url(
    triton_grpc_url: str, redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    uploads = tmp_path_factory.mktemp("page-uploads")
    async with own_database(redis_server) as redis_url:
        settings = Settings(
            triton_grpc_urls=[triton_grpc_url],
            allowed_media_hosts=LOOPBACK,
            upload_dir=uploads,
            redis_url=redis_url,
        )
        async with serving(create_app(settings)) as base:
            yield base


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("chromium and chromedriver are needed: `make test` installs them (apt-get)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path)})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def downloads_offered(driver: Any) -> bool:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "downloads").get_attribute("hidden") is None


def error_shown(driver: Any) -> bool:
    from selenium.webdriver.common.by import By

    return bool(driver.find_elements(By.CSS_SELECTOR, "#status .error"))


def drop_and_wait(driver: Any, media: Path, timeout_s: float, until: Callable[[Any], bool] = downloads_offered) -> str:
    """Give the page `media` through its file chooser (as a drop does) and wait `until` (by default for the
    downloads); the status line."""
    from selenium.webdriver.common.by import By

    chooser = driver.find_element(By.ID, "file")
    driver.execute_script("arguments[0].hidden = false", chooser)
    chooser.send_keys(str(media))
    deadline = time.monotonic() + timeout_s
    while not until(driver):
        assert time.monotonic() < deadline, driver.find_element(By.ID, "status").text
        time.sleep(0.2)
    return str(driver.find_element(By.ID, "status").text)


async def test_drop_a_file_watch_it_play_a_segment_and_download_srt(
    page_url: str, browser: object, tmp_path: Path
) -> None:
    import asyncio

    from selenium.webdriver.common.by import By

    driver = browser  # a selenium WebDriver; its calls block, so they run in a thread
    jfk = next(c for c in manifest() if c.path.name == "jfk.flac")

    def drive() -> list[str]:
        driver.get(page_url)  # type: ignore[attr-defined]
        status = drop_and_wait(driver, speech_dir() / "jfk.flac", 120)
        segments = driver.find_elements(By.CSS_SELECTOR, "#segments li")  # type: ignore[attr-defined]
        segments[-1].click()
        start = float(segments[-1].get_attribute("data-start"))
        played = driver.execute_script("return document.getElementById('player').currentTime")  # type: ignore[attr-defined]
        assert abs(played - start) < 0.5, (played, start)
        driver.find_element(By.CSS_SELECTOR, "#downloads [data-format=srt]").click()  # type: ignore[attr-defined]
        return [status, *(s.text for s in segments)]

    status, *shown = await asyncio.to_thread(drive)
    assert status.startswith("Done:")
    assert wer(jfk.reference, " ".join(line.split(maxsplit=1)[1] for line in shown)) <= JFK_MAX_WER
    for _ in range(100):
        downloaded = list(tmp_path.glob("transcript*.srt"))
        if downloaded:
            break
        await asyncio.sleep(0.1)
    cues = list(srt.parse(downloaded[0].read_text()))
    assert wer(jfk.reference, " ".join(c.content for c in cues)) <= JFK_MAX_WER


async def test_diarize_shows_speakers_in_their_colours_and_a_rename_reaches_the_download(
    keyed_service_url: str, browser: object, tmp_path: Path
) -> None:
    """On the service as production runs it (keys on, loopback media refused: the page uploads): without
    the key the page says why it got nothing; with the key typed in, who spoke when."""
    import asyncio

    from selenium.webdriver.common.by import By

    from ..conversations import SPEAKER_SETS, build_conversation

    driver = browser  # a selenium WebDriver; its calls block, so they run in a thread
    two = {name: SPEAKER_SETS["mixed"][name] for name in ("libri1089", "lj")}
    media = build_conversation(two, duration_s=30.0, seed=5).write_wav(tmp_path / "media" / "two-voices.wav")

    def refused() -> str:
        driver.get(keyed_service_url)  # type: ignore[attr-defined]
        driver.find_element(By.ID, "diarize").click()  # type: ignore[attr-defined]
        return drop_and_wait(driver, media, 30, until=error_shown)

    def drive() -> tuple[str, list[tuple[str, str]]]:
        driver.get(keyed_service_url)  # type: ignore[attr-defined]
        driver.find_element(By.ID, "key").send_keys(SERVICE_KEY)  # type: ignore[attr-defined]
        driver.find_element(By.ID, "diarize").click()  # type: ignore[attr-defined]
        status = drop_and_wait(driver, media, 180)
        labels = driver.find_elements(By.CSS_SELECTOR, "#segments .speaker")  # type: ignore[attr-defined]
        shown = [(el.text, el.value_of_css_property("color")) for el in labels]
        rename = driver.find_element(By.CSS_SELECTOR, "#speakers input[data-speaker=SPEAKER_00]")  # type: ignore[attr-defined]
        rename.clear()
        rename.send_keys("Ada")
        renamed = {el.text for el in driver.find_elements(By.CSS_SELECTOR, "#segments .speaker")}  # type: ignore[attr-defined]
        assert "Ada" in renamed and "SPEAKER_00" not in renamed
        driver.find_element(By.CSS_SELECTOR, "#downloads [data-format=vtt]").click()  # type: ignore[attr-defined]
        return status, shown

    without_key = await asyncio.to_thread(refused)
    assert "API key" in without_key, without_key
    status, shown = await asyncio.to_thread(drive)
    assert status.startswith("Done:") and "2 speakers" in status
    colours = dict(shown)
    assert set(colours) == {"SPEAKER_00", "SPEAKER_01"} and len(set(colours.values())) == 2, "one colour each"
    for _ in range(100):
        downloaded = list(tmp_path.glob("transcript*.vtt"))
        if downloaded:
            break
        await asyncio.sleep(0.1)
    vtt = downloaded[0].read_text()
    assert "<v Ada>" in vtt and "<v SPEAKER_01>" in vtt and "SPEAKER_00" not in vtt
