"""The OpenAPI document the service serves at /openapi.json, built from the pydantic shapes."""

from __future__ import annotations

import functools
from typing import Any

from orchestrator.jobs.records import JobRequest
from orchestrator.schemas import MAX_LINE_COUNT, MAX_LINE_WIDTH, RESPONSE_FORMATS, TranscribeOutput, TranscribeRequest

REF = "#/components/schemas/{model}"
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "hint"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "hint": {"type": "string"}},
        }
    },
}
OPENAI_ERROR_SCHEMA = {  # OpenAI's shape, and our hint
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code", "hint"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string", "description": "invalid_request_error, authentication_error, "
                         "requests (429) or server_error"},
                "param": {"type": ["string", "null"], "description": "the form field at fault, where known"},
                "code": {"type": "string", "description": "the same codes as the native routes"},
                "hint": {"type": "string"},
            },
        }
    },
}  # fmt: skip
TRANSLATION_FIELDS: dict[str, Any] = {
    "file": {"type": "string", "format": "binary"},
    "url": {"type": "string", "description": "instead of file: media at an http(s) URL"},
    "model": {"type": "string"},
    "prompt": {"type": "string"},
    "language": {"type": "string", "description": "the spoken language (ISO 639-1); omitted: detected"},
    "response_format": {"type": "string", "enum": ["json", "text", "srt", "vtt", "verbose_json"]},
    "temperature": {"type": "number", "minimum": 0, "maximum": 1},
    "macro_chunk_size_sec": {"type": "number", "exclusiveMinimum": 0, "description": "extension: as in params"},
}
TRANSLATION_FORM = {"type": "object", "properties": TRANSLATION_FIELDS}
OPENAI_FORM = {
    "type": "object",
    "properties": {
        **TRANSLATION_FIELDS,
        "timestamp_granularities[]": {"type": "array", "items": {"type": "string", "enum": ["segment", "word"]}},
        "response_format": {
            "type": "string",
            "enum": ["json", "text", "srt", "vtt", "verbose_json", "diarized_json"],
            "description": "diarized_json: who spoke when, as OpenAI's gpt-4o-transcribe-diarize answers it",
        },
        "known_speaker_names[]": {"type": "array", "maxItems": 4, "items": {"type": "string"}},
        "known_speaker_references[]": {
            "type": "array",
            "maxItems": 4,
            "items": {"type": "string", "description": "a data URL of 2-10 s of the speaker's voice"},
        },
        "stream": {
            "type": "boolean",
            "description": "text/event-stream: transcript.text.delta events as chunks settle, then (diarized_json) "
            "one transcript.text.segment per segment with its speaker, then one transcript.text.done with the "
            "whole text (needs the job store: Redis)",
        },
    },
}
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
LINE_LIMITS = [  # srt and vtt only, as openai/whisper's --max_line_width / --max_line_count
    {
        "name": "max_line_width",
        "in": "query",
        "required": False,
        "description": "srt and vtt: lines of at most this many characters (a longer word keeps its own line)",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LINE_WIDTH},
    },
    {
        "name": "max_line_count",
        "in": "query",
        "required": False,
        "description": "srt and vtt, with max_line_width: at most this many lines per cue, the words flowing on "
        "into the next cue",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LINE_COUNT},
    },
]
ERRORS = {
    "400": "a body that cannot be read as sent: JSON nested over 32 levels, a repeated `file` or field",
    "401": "no valid API key (when keys are configured)",
    "404": "no such job (or one another API key made: the same answer), or no such model (the message names "
    "the models served)",
    "409": "the job is not in a state that allows this (a webhook resent before the job finished, or without one)",
    "413": "the body is over 1 MiB, a form over max_form_parts or max_form_field_bytes, or an upload over "
    "max_upload_bytes",
    "422": "the request or the media cannot be transcribed; `error.code` says which",
    "429": "too many requests in flight, too many jobs waiting across the fleet or for this API key, or too many "
    "event streams open for this API key; the message names the limit; see Retry-After",
    "502": "inference failed",
    "503": "no inference endpoint answers, the service is stopping, or it keeps no jobs (no Redis)",
    "504": "over the per-request time limit",
}


OPENAI_ERRORS = {
    "400": "bad input of any kind (OpenAI's status): a field, the media, a translation the model cannot do",
    "401": "no valid API key (when keys are configured)",
    "404": "no such model (the message names the models served)",
    "413": "an upload over max_upload_bytes, or a form over its limits",
    "429": "too many requests in flight, or jobs waiting (stream=true); see Retry-After",
    "502": "inference failed",
    "503": "no inference endpoint answers, or the service is stopping",
    "504": "over the per-request time limit",
}


def _schemas() -> dict[str, Any]:
    found: dict[str, Any] = {"Error": ERROR_SCHEMA, "OpenAIError": OPENAI_ERROR_SCHEMA}
    for model in (TranscribeRequest, TranscribeOutput, JobRequest):
        schema = model.model_json_schema(ref_template=REF)
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def _error_responses() -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}
    return {status: {"description": text, "content": content} for status, text in ERRORS.items()}


def _openai_error_responses() -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": REF.format(model="OpenAIError")}}}
    return {status: {"description": text, "content": content} for status, text in OPENAI_ERRORS.items()}


@functools.cache
def document() -> dict[str, Any]:
    probe = {"200": {"description": "ok"}, "503": {"description": "not ready"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "longscribe",
            "version": "1",
            "description": "Long-form speech at a URL to a timestamped transcript; errors are "
            '`{"error": {"code", "message", "hint"}}`.',
        },
        "paths": {
            "/v1/transcribe": {
                "post": {
                    "summary": "Transcribe the media at media_url",
                    "parameters": [
                        {
                            "name": "response_format",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": list(RESPONSE_FORMATS)},
                        },
                        *LINE_LIMITS,
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": REF.format(model="TranscribeRequest")}}},
                    },
                    "responses": {
                        "200": {
                            "description": "the transcript (JSON unless response_format asks for text, srt, vtt "
                            "or tsv)",
                            "content": {
                                "application/json": {"schema": {"$ref": REF.format(model="TranscribeOutput")}},
                                "text/plain": {"schema": {"type": "string"}},
                                "text/vtt": {"schema": {"type": "string"}},
                                "application/x-subrip": {"schema": {"type": "string"}},
                                "text/tab-separated-values": {"schema": {"type": "string"}},
                            },
                        },
                        **_error_responses(),
                    },
                    "security": [{"ApiKey": []}, {"Bearer": []}, {}],
                }
            },
            "/v1/audio/transcriptions": {
                "post": {
                    "summary": "OpenAI-compatible: transcribe an uploaded file (or, as an extension, a url)",
                    "requestBody": {
                        "required": True,
                        "content": {"multipart/form-data": {"schema": OPENAI_FORM}},
                    },
                    "responses": {
                        "200": {
                            "description": "{text}, OpenAI's verbose_json, or text / srt / vtt; with stream=true "
                            "server-sent events (data: {type, delta} ..., then data: {type, text})",
                        },
                        **_openai_error_responses(),
                    },
                    "security": [{"ApiKey": []}, {"Bearer": []}, {}],
                }
            },
            "/v1/audio/translations": {
                "post": {
                    "summary": "OpenAI-compatible: English text from speech in any language (a multilingual model)",
                    "requestBody": {
                        "required": True,
                        "content": {"multipart/form-data": {"schema": TRANSLATION_FORM}},
                    },
                    "responses": {
                        "200": {"description": "{text}, OpenAI's verbose_json, or text / srt / vtt"},
                        **_openai_error_responses(),
                    },
                    "security": [{"ApiKey": []}, {"Bearer": []}, {}],
                }
            },
            "/v1/models": {
                "get": {
                    "summary": "OpenAI-compatible: the models served, the default first, then whisper-1 (its alias)",
                    "responses": {
                        "200": {"description": '{"object": "list", "data": [{"id", ...}]}'},
                        **_openai_error_responses(),
                    },
                    "security": [{"ApiKey": []}, {"Bearer": []}, {}],
                }
            },
            "/v1/models/{model}": {
                "parameters": [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": {
                    "summary": "OpenAI-compatible: one model's card (whisper-1 too)",
                    "responses": {"200": {"description": "the model's card"}, **_openai_error_responses()},
                    "security": [{"ApiKey": []}, {"Bearer": []}, {}],
                },
            },  # fmt: skip
            "/v1/jobs": {
                "post": {
                    "summary": "Start a job: the /v1/transcribe body plus webhook_url (or a multipart file)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": REF.format(model="JobRequest")}}},
                    },
                    "responses": {
                        "202": {"description": "the job, with links to itself, its events and its transcript"},
                        **_error_responses(),
                    },  # fmt: skip
                    "security": [{"ApiKey": []}, {"Bearer": []}, {}],
                }
            },
            "/v1/jobs/{job_id}": {  # each job route answers only the key that made the job, or an admin key
                "parameters": [JOB_ID],
                "get": {
                    "summary": "status, the worker running it, progress (chunks_resumed too), the finished "
                    "prefix or the result, the webhook's delivery",
                    "responses": {"200": {"description": "the job"}, **_error_responses()},
                },
                "delete": {
                    "summary": "cancel, wherever it runs",
                    "responses": {"200": {"description": "the job, cancelled"}, **_error_responses()},
                },
            },  # fmt: skip
            "/v1/jobs/{job_id}/events": {
                "parameters": [JOB_ID],
                "get": {
                    "summary": "server-sent events with ids: status, chunk (progress and the segments it added), "
                    "end (status, summary, links); resume with the Last-Event-ID header",
                    "responses": {"200": {"description": "text/event-stream"}, **_error_responses()},
                },
            },  # fmt: skip
            "/v1/jobs/{job_id}/webhook": {
                "parameters": [JOB_ID],
                "post": {
                    "summary": "send a finished job's webhook again: a new round of attempts, the same delivery id "
                    "(X-Longscribe-Delivery); a delivery under way goes on as it is",
                    "responses": {
                        "202": {"description": '{"id", "webhook": {"id", "state": "pending", "attempts", ...}}'},
                        **_error_responses(),
                    },
                },
            },  # fmt: skip
            "/v1/jobs/{job_id}/transcript": {
                "parameters": [
                    JOB_ID,
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": list(RESPONSE_FORMATS)},
                    },
                    *LINE_LIMITS,
                    {
                        "name": "speaker_names",
                        "in": "query",
                        "required": False,
                        "description": "a diarized transcript's speakers renamed in this download: JSON, "
                        '{"SPEAKER_00": "Ada"}',
                        "schema": {"type": "string"},
                    },
                ],
                "get": {
                    "summary": "the finished transcript as a file, streamed",
                    "responses": {"200": {"description": "the transcript"}, **_error_responses()},
                },
            },  # fmt: skip
            "/healthz": {"get": {"summary": "the process is up", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Redis and one Triton endpoint or more ready", "responses": probe}},
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "Api-Key <key>"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
