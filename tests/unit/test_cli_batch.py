"""The CLI's pure parts: format lists, the names of the files written, what it draws, and its flags."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from longscribe import Segment
from orchestrator.cli.batch import ALL, Board, output_names, parse_formats
from orchestrator.cli.main import hyphenated, main, parser
from orchestrator.cli.progress import segment_line


def test_formats_are_a_comma_list_or_all_in_the_apis_names_too() -> None:
    assert parse_formats("srt,vtt,txt,json") == ["srt", "vtt", "txt", "json"]
    assert parse_formats("all") == ALL == ["txt", "srt", "vtt", "tsv", "json"]  # as whisper's `all`
    assert parse_formats("verbose_json,tsv") == ["verbose.json", "tsv"]
    assert parse_formats("text, srt,srt") == ["txt", "srt"]
    with pytest.raises(ValueError, match="docx"):
        parse_formats("srt,docx")


def test_each_input_is_named_after_its_file_and_repeats_are_told_apart() -> None:
    inputs = ["talks/a.mp3", "b.mp4", "https://host/media/c.m4a?sig=1", "other/a.wav", "https://host/"]
    assert output_names(inputs) == ["a", "b", "c", "a-2", "transcript"]


def test_off_a_terminal_every_update_and_note_is_a_line_naming_its_input() -> None:
    out = io.StringIO()
    board = Board(["a", "b"], out, quiet=False)
    board.update(1, "[####....]  0:01 / 0:02 audio")
    board.note(0, "[00:00.000 --> 00:01.500] Hello.")
    board.update(0, "done")
    assert out.getvalue().splitlines() == [
        "b: [####....]  0:01 / 0:02 audio",
        "a: [00:00.000 --> 00:01.500] Hello.",
        "a: done",
    ]


def test_one_input_draws_without_its_name_and_quiet_draws_nothing() -> None:
    out = io.StringIO()
    Board(["a"], out, quiet=False, named=False).update(0, "done")
    Board(["a"], out, quiet=True, named=False).note(0, "job 1")
    assert out.getvalue() == "done\n"


def test_on_a_terminal_notes_stay_above_the_lines_redrawn_in_place() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    board = Board(["a", "b"], out, quiet=False)
    board.update(0, "half")
    board.note(1, "a note")
    assert out.getvalue() == (
        "\x1b[2Ka  half\n\x1b[2Kb  waiting\n"  # drawn
        "\x1b[2F\x1b[J"  # back up and erased
        "b: a note\n"  # the note, kept
        "\x1b[2Ka  half\n\x1b[2Kb  waiting\n"  # drawn again below it
    )


def test_segments_print_as_whisper_verbose_prints_them() -> None:
    assert segment_line(Segment(1.0, 4.25, " Hello there.")) == "[00:01.000 --> 00:04.250] Hello there."
    assert segment_line(Segment(3725.5, 3726.0, "x")) == "[01:02:05.500 --> 01:02:06.000] x"


def test_whispers_underscored_flags_are_read_as_ours() -> None:
    argv = ["transcribe", "a_b.mp3", "--output_format", "srt", "--initial_prompt=Kubernetes_x", "--word_timestamps"]
    assert hyphenated(argv) == [
        "transcribe",
        "a_b.mp3",
        "--output-format",
        "srt",
        "--initial-prompt=Kubernetes_x",
        "--word-timestamps",
    ]
    args = parser().parse_args(hyphenated(argv) + ["True", "--task", "translate"])
    assert (args.format, args.prompt, args.word_timestamps, args.task) == ("srt", "Kubernetes_x", True, "translate")


def test_help_shows_defaults_examples_and_exit_codes() -> None:
    text = parser()._subparsers._group_actions[0].choices["transcribe"].format_help()  # type: ignore[union-attr]
    assert "(default: transcribe)" in text and "examples:" in text and "exit codes:" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_an_output_dir_that_cannot_be_made_is_one_line_and_a_usage_error(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    media = tmp_path / "talk.mp3"
    media.write_bytes(b"")
    # refused before any job or service: the unreachable server is never asked
    code = main(["transcribe", str(media), str(media), "-o", str(blocker / "out"), "--server", "http://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "--output-dir" in err[0] and "Traceback" not in err[0]


def test_a_url_is_known_whatever_the_case_of_its_scheme() -> None:
    assert output_names(["HTTPS://example.com/a/talk.mp3"]) == ["talk"]


def test_sigterm_stops_a_transcription_as_ctrl_c_does_and_what_it_started_is_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python's default SIGTERM exits at once: `longscribe transcribe` killed by a CI timeout or `kill` left
    its self-started Triton running (seen while measuring the two-hour test). Now its `async with`s unwind."""
    import argparse
    import asyncio
    import os
    import signal

    from orchestrator.cli import main as cli_main
    from orchestrator.cli import transcribe

    unwound: list[str] = []

    async def transcribing(args: argparse.Namespace) -> int:
        try:  # the service it started lives in such a block
            asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
            await asyncio.sleep(30)
            return transcribe.OK
        finally:
            unwound.append("service stopped")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(transcribe, "transcribe", transcribing)
    assert cli_main._run_transcribe(argparse.Namespace()) == transcribe.INTERRUPTED
    assert unwound == ["service stopped"]
    assert signal.getsignal(signal.SIGTERM) is before, "the handler is the command's only"
