"""`longscribe serve` and `longscribe transcribe`: the parser, and what each command's failures return."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import signal
import sys

import longscribe
from orchestrator.cli import transcribe

MODEL_HELP = (
    "a Whisper model: tiny.en (English) or base (multilingual), both packaged; one of faster-whisper's "
    "names (small, medium, large-v3, distil-large-v3, turbo, ...) or a Hugging Face id of a CTranslate2 Whisper "
    "repository (Org/repo[@revision]), fetched into the Hugging Face cache (HF_HOME, HF_HUB_OFFLINE honoured); "
    "or a CTranslate2 directory. `name=source` names it for requests"
)
TRANSCRIBE_EPILOG = """\
examples:
  longscribe transcribe talk.mp3                        start a service for this command, print the text
  longscribe transcribe talk.mp3 --server http://gpu-box:8080 --api-key KEY
                                                        upload to a running service
  longscribe transcribe https://example.com/talk.mp3 --server http://gpu-box:8080 -f srt --max-line-width 42
  longscribe transcribe *.mp3 -o subtitles -f srt,vtt   a job per file, all at once; files in subtitles/
  cat talk.wav | longscribe transcribe - --language de --task translate --model base
  longscribe transcribe talk.mp3 -f json > talk.json    the service's full answer (segments, text, durations)

local files and - (standard input) are uploaded; http(s) URLs are fetched by the service.
whisper's spellings work too: --output_format, --output_dir, --initial_prompt, --word_timestamps True.

exit codes:
  0    every input transcribed
  1    an input failed (the service refused it or its job failed); the others still ran
  2    usage: a bad flag or format, a missing file
  3    the service could not be reached, or refused the API key
  4    the service started for this command (no --server) could not start
  130  interrupted (Ctrl-C): the jobs were cancelled on the service
"""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown where there is one (not for unset options and flags), and the epilog as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def boolean(text: str) -> bool:
    """`--word-timestamps True` as whisper writes it, as well as the bare flag."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, not {text!r}")


def temperature(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"the temperature is between 0 and 1, not {value:g}")
    return value


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {value}")
    return value


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run Triton and the REST API until Ctrl-C", formatter_class=HelpFormatter)
    serve.add_argument(
        "--host", help="address to listen on (default: LONGSCRIBE_HOST, 127.0.0.1; 0.0.0.0 for every interface)"
    )
    serve.add_argument("--port", type=int, help="port of the REST API (default: LONGSCRIBE_PORT, 8080)")
    serve.add_argument(
        "--triton-url", action="append", help="use this Triton gRPC endpoint (repeatable) instead of starting one"
    )
    serve.add_argument(
        "--no-triton",
        action="store_true",
        help="do not start Triton: use LONGSCRIBE_TRITON_GRPC_URLS or LONGSCRIBE_TRITON_DISCOVERY_DNS (containers)",
    )
    serve.add_argument(
        "--model", action="append", help=MODEL_HELP + "; repeat to serve several, the first is the default"
    )
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without API keys, on purpose: every caller sees every job (refused when keys are configured)",
    )
    serve.add_argument("--triton-http-port", type=int)
    serve.add_argument("--triton-grpc-port", type=int)
    serve.add_argument("--triton-metrics-port", type=int)


def _transcribe_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tr = sub.add_parser(
        "transcribe",
        help="transcribe local files, URLs or standard input",
        description="Transcribe media through a longscribe service: --server's, or one started for the command.",
        epilog=TRANSCRIBE_EPILOG,
        formatter_class=HelpFormatter,
    )
    tr.add_argument("media", nargs="+", help="local paths (uploaded), http(s) URLs (fetched by the service), or -")
    where = tr.add_argument_group("where")
    where.add_argument("--server", help="a running longscribe, e.g. http://127.0.0.1:8080; default: start one")
    where.add_argument(
        "--api-key", help="the key --server asks for, sent as `Authorization: Bearer`; default: $LONGSCRIBE_API_KEY"
    )
    where.add_argument("--model", help=MODEL_HELP + "; with --server: the name of one the server serves")
    out = tr.add_argument_group("output")
    out.add_argument(
        "-f",
        "--format",
        "--output-format",
        dest="format",
        help="one input on stdout: text (default), json (the service's full answer: segments, text, "
        "durations), verbose_json (json with the language, per-segment scores and timings), srt, vtt or tsv. "
        "Files: txt, srt, vtt, tsv, json, verbose_json, comma-separated, or all (the default: txt, srt, vtt, "
        "tsv, json)",
    )
    out.add_argument(
        "-o",
        "--output-dir",
        dest="output_dir",
        help="write <dir>/<input name>.<ext> per input and format (several inputs: default .)",
    )
    out.add_argument("--max-line-width", type=positive, help="srt/vtt: wrap cue lines at this many characters")
    out.add_argument(
        "--max-line-count",
        type=positive,
        help="srt/vtt: at most this many lines per cue; longer segments become several cues",
    )
    out.add_argument(
        "-v",
        "--verbose",
        nargs="?",
        const=True,
        default=False,
        type=boolean,
        help="print each segment as it settles, [00:01.000 --> 00:04.000] text, on stderr",
    )
    out.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary: only the transcript")
    out.add_argument("--triton-log", action="store_true", help="show the started service's and Triton's log")
    how = tr.add_argument_group("decoding")
    how.add_argument("--language", help="ISO 639-1 code; default: English, or detected on a multilingual model")
    how.add_argument(
        "--task",
        choices=("transcribe", "translate"),
        default="transcribe",
        help="translate: English text from any language (a multilingual model)",
    )
    how.add_argument(
        "--prompt",
        "--initial-prompt",
        dest="prompt",
        help="text that guides spelling and style (names, jargon), given to every window",
    )
    how.add_argument(
        "--temperature",
        type=temperature,
        help="0 (the service's default): greedy, falling back hotter where a decode fails; above 0: sampling "
        "starts there",
    )
    how.add_argument(
        "--word-timestamps",
        nargs="?",
        const=True,
        default=False,
        type=boolean,
        help="add word times (json formats; subtitles split by words)",
    )
    who = tr.add_argument_group("speakers (who spoke when)")
    who.add_argument(
        "--diarize",
        nargs="?",
        const=True,
        default=False,
        type=boolean,
        help="label each segment with its speaker: SPEAKER_00: ... in text and srt, <v SPEAKER_00> in vtt",
    )
    who.add_argument("--speakers", type=positive, help="with --diarize: exactly this many speakers (default: found)")
    who.add_argument("--min-speakers", type=positive, help="with --diarize: at least this many speakers")
    who.add_argument("--max-speakers", type=positive, help="with --diarize: at most this many speakers")
    how.add_argument("--macro-chunk-size-sec", type=float, help="the service's macro chunk length (default 300)")
    how.add_argument("--micro-chunk-size-sec", type=float, help="longest piece sent to Whisper (default 30)")
    local = tr.add_argument_group("the service started without --server")
    local.add_argument("--triton-url", action="append", help="use this Triton gRPC endpoint instead of starting one")
    local.add_argument("--triton-http-port", type=int)
    local.add_argument("--triton-grpc-port", type=int)
    local.add_argument("--triton-metrics-port", type=int)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="longscribe", description="Long-form speech to timestamped text.", formatter_class=HelpFormatter
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {longscribe.__version__}")
    sub = top.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _transcribe_parser(sub)
    return top


M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 1 << 20


def return_freed_buffers_to_the_os() -> None:
    """Give each buffer over 1 MiB (a chunk's PCM, its gRPC request) its own mapping.

    glibc raises its mmap threshold to the largest buffer freed so far, after
    which 10 MB chunk buffers come from the heap and its fragments are never
    returned: the service grew by about 80 MB per hour of audio. A fixed
    threshold keeps it flat. Only in this process: the inference stubs, with
    many mid-sized arrays, run faster with glibc's default.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def hyphenated(argv: list[str]) -> list[str]:
    """whisper's spellings (`--output_format srt`, `--initial_prompt=...`) as ours; values left alone."""
    out = []
    for arg in argv:
        if arg.startswith("--") and "_" in arg.split("=", 1)[0]:
            name, sep, value = arg.partition("=")
            arg = name.replace("_", "-") + sep + value
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(hyphenated(sys.argv[1:] if argv is None else argv))
    if args.command == "transcribe" and args.server:  # a client only: nothing of the server side is loaded
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        return _run_transcribe(args)
    from orchestrator.cli import service  # the server side: Triton, Redis, the REST API

    return_freed_buffers_to_the_os()
    quiet = args.command == "transcribe" and not args.triton_log
    service.configure_logging(logging.WARNING if quiet else logging.INFO)
    try:
        if args.command == "serve":
            return asyncio.run(service.serve(args))
        return _run_transcribe(args)
    except Exception as exc:
        line = service.start_failure(exc)
        if line is None:
            raise
        transcribe.say(line)
        if args.command == "transcribe":
            return transcribe.NO_SERVICE
        return 2 if isinstance(exc, service.KeysMisconfigured) else 1
    except KeyboardInterrupt:
        return transcribe.INTERRUPTED


def _run_transcribe(args: argparse.Namespace) -> int:
    # SIGTERM (a CI timeout, `kill`, a container stopping) stops it as Ctrl-C does: the service it started is
    # stopped on the way out. Python's default for SIGTERM exits at once, which left its Triton running.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return asyncio.run(transcribe.transcribe(args))
    except KeyboardInterrupt:
        return transcribe.INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
