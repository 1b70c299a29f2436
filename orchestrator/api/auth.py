"""API keys: who may call. Off when no key is configured.

Accepted forms: `Authorization: Api-Key <key>` (Baseten's) and
`Authorization: Bearer <key>` (OpenAI clients). Keys are compared as SHA-256
digests with `hmac.compare_digest`, against every key, so neither a key's
length nor its first differing byte shows in the time taken. Keys are never
logged: only this module sees them.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from orchestrator.errors import Unauthorized

SCHEMES = ("api-key", "bearer")


def load_keys(keys: list[str], keys_file: Path | None) -> list[bytes]:
    """Digests of the configured keys: the list, plus one key per line of the file (# comments)."""
    found = [k.strip() for k in keys if k.strip()]
    if keys_file is not None:
        lines = keys_file.read_text().splitlines()
        found += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [_digest(k) for k in found]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def check(authorization: str | None, digests: list[bytes]) -> None:
    """Raise Unauthorized unless the header carries one of the keys (always passes when there are none)."""
    if not digests:
        return
    scheme, _, key = (authorization or "").strip().partition(" ")
    if scheme.lower() not in SCHEMES or not key.strip():
        raise Unauthorized("missing API key: send `Authorization: Api-Key <key>` or `Authorization: Bearer <key>`")
    offered = _digest(key.strip())
    matched = False
    for digest in digests:  # no early exit: the time does not depend on which key matched
        matched |= hmac.compare_digest(offered, digest)
    if not matched:
        raise Unauthorized("the API key is not valid")
