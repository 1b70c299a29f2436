"""A transcript that reads right: case and punctuation survive the joins, at the default sizes and with forced cuts.

Scored on the cased, punctuated clips (LJ Speech and jfk) joined with
0.4-1.5 s gaps; `make bench-accuracy` puts the same numbers beside
faster-whisper's (13.4 % formatted WER for both of its modes, tiny.en int8).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..corpus import Recording, long_form_recording
from ..readability import formatted_wer, join_artifacts
from .test_transcribe_api import assert_well_formed, post

pytestmark = pytest.mark.integration

DEFAULT = {"macro_chunk_size_sec": 300, "micro_chunk_size_sec": 30}
MANY_CUTS = {"macro_chunk_size_sec": 20, "micro_chunk_size_sec": 8}
MAX_FORMATTED_WER = 0.134  # at the default sizes: at or below the better faster-whisper mode
MAX_JOIN_ARTIFACTS_PER_1000_WORDS = 5.0  # at either size


@pytest.fixture(scope="module")
def cased(media_root: Path) -> Recording:
    return long_form_recording(media_root / "cased.wav", cased_only=True)


@pytest.mark.parametrize("sizes", [DEFAULT, MANY_CUTS], ids=["default sizes", "macro 20 s, micro 8 s"])
async def test_joins_leave_no_lower_case_sentence_starts_or_stray_capitals(
    sizes: dict[str, float], service_url: str, media_url: str, cased: Recording
) -> None:
    status, out = await post(service_url, {"media_url": f"{media_url}/cased.wav", "params": sizes})
    assert status == 200, out
    assert_well_formed(out, cased.duration_s)
    found = join_artifacts(cased.reference, out["text"])
    fwer = formatted_wer(cased.reference, out["text"])
    print(f"{sizes}: formatted WER {fwer:.3f}, join artifacts {found.per_1000_words:.1f} / 1000 words")
    assert found.per_1000_words <= MAX_JOIN_ARTIFACTS_PER_1000_WORDS
    if sizes is DEFAULT:
        assert fwer <= MAX_FORMATTED_WER
