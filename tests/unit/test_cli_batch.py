"""The many-input CLI's pure parts: format lists and the names of the files written."""

from __future__ import annotations

import io

import pytest

from orchestrator.cli.batch import EXTENSIONS, Board, output_names, parse_formats


def test_formats_are_a_comma_list_or_all_in_the_apis_names_too() -> None:
    assert parse_formats("srt,vtt,txt,json") == ["srt", "vtt", "txt", "json"]
    assert parse_formats("all") == list(EXTENSIONS)
    assert parse_formats("text, srt,srt") == ["txt", "srt"]
    with pytest.raises(ValueError, match="docx"):
        parse_formats("srt,docx")


def test_each_input_is_named_after_its_file_and_repeats_are_told_apart() -> None:
    inputs = ["talks/a.mp3", "b.mp4", "https://host/media/c.m4a?sig=1", "other/a.wav", "https://host/"]
    assert output_names(inputs) == ["a", "b", "c", "a-2", "transcript"]


def test_off_a_terminal_every_update_is_a_line_naming_its_input() -> None:
    out = io.StringIO()
    board = Board(["a", "b"], out, quiet=False)
    board.lane(1).write("[####....]  0:01 / 0:02 audio\n")
    board.update(0, "done")
    assert out.getvalue().splitlines() == ["b: [####....]  0:01 / 0:02 audio", "a: done"]
