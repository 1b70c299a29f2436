"""One word-error-rate bound per clip, whichever test, route or format hears it (`corpus.wer`).

Each bound is what the clip measured, plus a stated headroom in words, so a bound is not met by luck and
one test cannot ask less of a clip than another. Measured 2026-12-03 with CTranslate2 int8 on CPU, greedy
(temperature 0): the engine on the whole clip, with and without a prompt (as test_engine_contract.py), and
the micro chunker at 8 s after 3 s of silence (as test_whisper_model.py); tiny.en and base alike. Every
route (REST, OpenAI, CLI, web page, subtitles) decodes a clip this short in one window, so hears the same.
A sampled decode (temperature > 0) is another condition and keeps its own bound where it is tested.
"""

from __future__ import annotations

# jfk.flac, 22 words: measured 0.000 (0 words wrong) on every path above, both models.
# Headroom two words: 2 / 22 = 0.091 passes, 3 / 22 = 0.136 fails.
JFK_MAX_WER = 0.10

# ljspeech/LJ001-0001.flac, 27 words: measured 0.037 with tiny.en ("concern" for "concerned"), 0.000 with base.
# Headroom two words over tiny.en's: 3 / 27 = 0.111 passes, 4 / 27 = 0.148 fails.
LJ001_0001_MAX_WER = 0.12
