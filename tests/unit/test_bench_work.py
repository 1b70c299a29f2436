"""The benchmarks' own arithmetic: windows counted, CPU read, the time split, ratios against their goals,
and WER over the referenced parts of a recording. Pure: no Triton, no model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import work
from bench.harness import Result
from tests.corpus import Recording, Scored, other_speakers_recording

MiB = 1024 * 1024


class FakeWhisper:
    """Shaped as faster-whisper's WhisperModel: its sequential loop calls `self.encode` on one window."""

    def encode(self, features: np.ndarray) -> str:
        return f"encoded {features.shape}"

    def transcribe_windows(self, n: int) -> list[str]:
        return [self.encode(np.zeros((80, 3000))) for _ in range(n)]


class FakeBatched:
    """Shaped as BatchedInferencePipeline: one `model.encode` call per batch of segments."""

    def __init__(self, model: FakeWhisper) -> None:
        self.model = model

    def run(self, batches: list[int]) -> None:
        for size in batches:
            self.model.encode(np.zeros((size, 80, 3000)))


def test_a_sequential_window_counts_once_per_encoder_pass() -> None:
    model = FakeWhisper()
    counter = work.EncodeCounter(model)
    assert model.transcribe_windows(3) == ["encoded (80, 3000)"] * 3  # the real encode still runs
    assert (counter.windows, counter.calls) == (3, 3)


def test_a_batch_counts_each_of_its_segments() -> None:
    model = FakeWhisper()
    counter = work.EncodeCounter(model)
    FakeBatched(model).run([8, 8, 3])
    assert (counter.windows, counter.calls) == (19, 3)


def test_a_warm_up_is_not_counted_after_a_reset() -> None:
    model = FakeWhisper()
    counter = work.EncodeCounter(model)
    model.transcribe_windows(2)
    assert counter.reset() == 2
    FakeBatched(model).run([4])
    assert counter.windows == 4


def test_windows_per_audio_minute() -> None:
    assert work.per_audio_minute(94, 32 * 60) == pytest.approx(2.9375)
    assert work.per_audio_minute(5, 0) == 0.0


def test_cpu_seconds_are_read_past_a_command_name_with_spaces_and_parentheses() -> None:
    after_name = ["S"] + ["1"] * 10 + ["300", "100", "50", "25"] + ["0"] * 30  # utime is field 14 of stat
    cpu = work.parse_stat(f"1234 (triton (x) y) {' '.join(after_name)}")
    assert cpu == work.Cpu(400 / work.CLOCK_TICKS, 75 / work.CLOCK_TICKS)


def test_this_process_has_used_some_cpu() -> None:
    import os

    assert work.process_cpu(os.getpid()).own_s > 0
    assert work.process_cpu(-1) == work.Cpu(0.0, 0.0)  # gone: zero, not an error


def test_a_stub_is_named_by_the_model_it_runs() -> None:
    stub = "/venv/share/longscribe/backends/python/triton_python_backend_stub"
    args = ["shm_region", "1048576", "1048576", "26211", "/venv/backends/python", "336"]
    assert work.triton_part([stub, "/repo/whisper/1/model.py", *args, "whisper_0_1", "DEFAULT"]) == "whisper"
    assert work.triton_part([stub, "/repo/micro_chunker/1/model.py", *args]) == "micro_chunker"
    assert work.triton_part(["/venv/bin/tritonserver", "--model-repository", "/repo"]) == "tritonserver"


def test_the_time_split_is_in_cpu_seconds_with_shares_that_sum_to_one() -> None:
    timings = {"encoder_sec": 6.0, "decoder_sec": 3.0, "alignment_sec": 0.5, "mel_sec": 0.5, "probe_sec": 9.0}
    cpu = {"whisper_s": 5.0, "orchestrator_s": 1.0, "micro_chunker_s": 2.0, "tritonserver_s": 1.5, "ffmpeg_s": 0.5}
    stages = {s.name: s for s in work.time_split(timings, cpu)}
    assert list(stages)[:5] == ["encoder", "decoder", "alignment", "mel", "orchestration"]
    assert stages["encoder"].cpu_s == pytest.approx(3.0)  # the whisper stubs' CPU, split by the model's timers
    assert stages["encoder"].model_s == 6.0 and stages["orchestration"].model_s is None
    assert stages["encoder"].share == pytest.approx(0.3) and stages["orchestration"].share == pytest.approx(0.1)
    assert stages["micro chunker (VAD, cuts)"].cpu_s == 2.0
    assert sum(s.share for s in stages.values()) == pytest.approx(1.0)
    assert all(s.share == 0.0 for s in work.time_split({}, {}))  # nothing measured: no division by zero


def test_a_speed_goal_is_met_at_or_above_its_bound() -> None:
    assert work.Goal("longscribe ÷ batched", 1.2, 1.2, at_least=True).met
    goal = work.Goal("longscribe ÷ batched", 0.97, 1.2, at_least=True)
    assert not goal.met
    assert goal.line() == "goal: longscribe ÷ batched >= 1.2; this run: 0.97 (NOT met)"


def test_a_memory_goal_is_met_at_or_below_its_bound() -> None:
    assert work.Goal("orchestrator", 1.10, 1.10, at_least=False).met
    assert not work.Goal("orchestrator", 1.30, 1.10, at_least=False).met


def test_peak_ratios_per_process_and_redis_aside() -> None:
    first = {"orchestrator": 254 * MiB, "triton": 1662 * MiB, "redis": 29 * MiB}
    last = {"orchestrator": 330 * MiB, "triton": 1700 * MiB, "redis": 46 * MiB, "cli": 75 * MiB}
    ratios = work.peak_ratios(first, last, ["orchestrator", "triton", "redis", "cli"])
    assert ratios == pytest.approx({"orchestrator": 330 / 254, "triton": 1700 / 1662, "redis": 46 / 29})
    goals = work.flat_memory_goals(ratios, 1.10, aside=["redis"], names={"triton": "Triton + stubs"})
    assert [(g.label, g.met) for g in goals] == [("orchestrator", False), ("Triton + stubs", True)]


def test_bench_long_prints_the_ratio_row_and_one_goal_line_per_process() -> None:
    from bench.long import table

    def row(hours: float, orchestrator: int, redis: int) -> dict[str, Any]:
        peaks = {"orchestrator": orchestrator * MiB, "tritonserver": 240 * MiB, "stub whisper_0_0": 450 * MiB}
        peaks |= {"redis": redis * MiB, "cli": 74 * MiB}
        return {
            "hours": hours, "wall_s": 60 * hours, "speedup": 60.0, "peak_pss_bytes": peaks,
            "largest_sse_event_bytes": 9000, "largest_sse_event": "chunk", "sse_events": 15,
            "worst_loop_block_s": 0.05, "transcript_bytes": 4096,
        }  # fmt: skip

    text = table([row(1, 250, 29), row(10, 270, 46)])
    assert "| 10 h ÷ 1 h | 1.00 per audio hour |  | 1.08 | 1.00 | 1.00 | 1.00 | 1.59 | 1.00 | 1.00 |" in text
    assert "  stub whisper_0_0: 1.00 (met)" in text
    assert "goal: every process's 10 h ÷ 1 h peak <= 1.10 (Redis, FFmpeg together aside)" in text
    assert "  orchestrator: 1.08 (met)" in text
    assert "  Redis: 1.59 (aside)" in text
    assert "every process within 1.10: met" in text


def test_a_markdown_table_refuses_a_row_of_the_wrong_width() -> None:
    assert work.markdown(["a", "b"], [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |"
    with pytest.raises(ValueError):
        work.markdown(["a", "b"], [["1"]])


def test_the_best_run_leaves_unreferenced_words_around_it_free() -> None:
    hypothesis = "so the force is mass times and so my fellow americans ask not".split()
    assert work.best_run("and so my fellow americans".split(), hypothesis) == (6, 11)
    start, end = work.best_run("and so my yellow americans ask".split(), hypothesis)
    assert hypothesis[start:end] == "and so my fellow americans ask".split()  # one substitution, no insertion


def test_a_window_that_starts_in_the_lecture_still_scores_its_referenced_words() -> None:
    segments = [
        (0.0, "Energy is conserved."),
        (20.0, "So the momentum is zero. And so my fellow Americans,"),  # a batched window across the boundary
        (40.0, "ask not what your country can do for you."),
        (55.0, "Now the pendulum swings."),  # the next lecture round
    ]
    stretch = (30.0, 52.0, "And so my fellow Americans, ask not what your country can do for you.")
    pairs = work.scored_runs(segments, [stretch], str.lower)
    assert pairs == [(stretch[2].lower(), stretch[2].lower())]


def test_bench_speed_reports_windows_split_and_goal_per_recording() -> None:
    from bench import speed

    recording = Recording(Path("x.mp3"), "and so my fellow americans", (1.0,), 600.0)
    timings = {
        "whisper_windows": 20, "whisper_aligned": 5, "encoder_sec": 6.0, "decoder_sec": 3.0, "alignment_sec": 0.5,
        "mel_sec": 0.5, "probe_sec": 0.1, "silence_search_sec": 0.0, "decode_sec": 0.4, "inference_sec": 9.0,
        "merge_sec": 0.01,
    }  # fmt: skip
    triton = {"whisper": {"queue_s": 1.0, "executions": 7}, "micro_chunker": {}}
    cpu = {"orchestrator_s": 1.0, "ffmpeg_s": 0.5, "whisper_s": 6.0, "micro_chunker_s": 2.0, "tritonserver_s": 0.5}
    ours = Result("longscribe", "and so my fellow americans", 10.0, [(1.0, "and so my fellow americans")],
                  {"timings": timings, "windows": 20, "triton": triton, "cpu": cpu})  # fmt: skip
    batched = Result(f"faster-whisper {speed.BATCHED} (8)", "and so my fellow", 12.0, [(1.0, "and so my fellow")],
                     {"windows": 15})  # fmt: skip
    text = speed.report({"the bench's recording": recording}, {"the bench's recording": [ours, batched]})
    assert "| longscribe | 10.0 | 60.0x | 1.00 | 0.0 % | 20 | 2.00 |" in text
    assert f"| faster-whisper {speed.BATCHED} (8) | 12.0 | 50.0x | 1.20 | 20.0 % | 15 | 1.50 |" in text
    assert f"goal: longscribe ÷ {speed.BATCHED} >= 1.2; this run: 1.20 (met)" in text
    assert "| encoder | 3.60 | 0.36 | 6.00 |" in text and "| orchestration | 1.00 | 0.10 |  |" in text
    assert "aligned windows: 5 of 20 (0.25); CPU 10.0 s of wall 10.0 s x" in text


def test_bench_speed_scores_a_mixed_recording_over_its_referenced_stretches_only() -> None:
    from bench import speed

    recording = Recording(Path("x.mp3"), "ask not", (31.0,), 60.0, (Scored(30.0, 40.0, "ask not"),))
    heard = Result("peer", "lecture words ask not more lecture", 5.0, [(0.0, "lecture words"), (31.0, "ask not"),
                   (45.0, "more lecture")], {})  # fmt: skip
    assert speed.scored_wer(recording, heard) == 0.0


def test_the_second_recording_scores_each_round_of_clips_separately(tmp_path: Path) -> None:
    recording = other_speakers_recording(tmp_path / "other.wav", minutes=1)
    assert recording.path.exists() and recording.duration_s > 50
    if not recording.scored:  # this corpus has no lecture: the clips alone, scored everywhere
        return
    assert " ".join(s.reference for s in recording.scored) == recording.reference
    for start in recording.clip_starts_s:
        assert sum(s.start_s <= start < s.end_s for s in recording.scored) == 1


def test_cpu_spent_between_readings_counts_a_process_first_seen_in_the_second_whole() -> None:
    before = {"orchestrator": 10.0, "tritonserver": 3.0}
    after = {"orchestrator": 12.5, "tritonserver": 3.0, "ffmpeg": 0.75}
    assert work.spent(before, after) == {"orchestrator": 2.5, "tritonserver": 0.0, "ffmpeg": 0.75}


def test_the_extra_share_is_median_against_median() -> None:
    # a neighbour's burst in one round of three moves neither median
    assert work.extra_share([10.0, 10.4, 30.0], [11.0, 11.2, 11.4]) == pytest.approx(0.8 / 10.4)
    assert work.extra_share([20.0, 20.0], [23.0, 22.0]) == pytest.approx(0.125)  # two rounds: their means
    assert work.extra_share([10.0], [9.0]) == pytest.approx(-0.1), "cheaper is a negative share, not hidden"


def test_a_speaker_set_meets_its_goal_only_with_every_der_within_and_every_count_right() -> None:
    met = work.der_summary([0.02, 0.08], [(3, 3), (3, 3)], bound=0.10)
    assert met.met and met.mean == pytest.approx(0.05) and met.worst == 0.08 and met.count_right == 2
    assert not work.der_summary([0.02, 0.11], [(3, 3), (3, 3)], 0.10).met, "one DER over the bound"
    miscounted = work.der_summary([0.02, 0.03], [(3, 3), (2, 3)], 0.10)
    assert not miscounted.met and miscounted.count_right == 1, "one count wrong"
    assert not work.der_summary([], [], 0.10).met, "nothing measured is not a goal met"
    with pytest.raises(ValueError):
        work.der_summary([0.02], [], 0.10)


def test_cpu_by_process_is_summed_per_model_its_stubs_together() -> None:
    used = {"orchestrator": 5.0, "tritonserver": 1.0, "stub whisper_0_0": 20.0, "stub whisper_0_1": 18.0}
    used |= {"stub micro_chunker_0_2": 3.0, "stub speaker_encoder_0_0": 2.5}
    assert work.by_model(used) == {
        "orchestrator": 5.0,
        "tritonserver": 1.0,
        "whisper": 38.0,
        "micro_chunker": 3.0,
        "speaker_encoder": 2.5,
    }
