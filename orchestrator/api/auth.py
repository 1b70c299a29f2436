"""API keys: who calls. Each key is its own tenant; admin keys see every tenant's jobs.

Accepted forms: `Authorization: Api-Key <key>` (Baseten's) and
`Authorization: Bearer <key>` (OpenAI clients). Keys are compared as SHA-256
digests with `hmac.compare_digest`, against every key, so neither a key's
length nor its first differing byte shows in the time taken. Keys are never
logged nor stored: only this module sees them. A caller is known by its
`key_id`, a short id derived from the key's digest, safe to keep in Redis
and in logs.

Which keys (`load`): auth is on when any key is configured. A keys file that
is missing or holds no key is an error at start, never "auth off". Auth off
is a stated choice (`no_auth`, or `api_keys` set to empty). With nothing
configured at all, `longscribe serve` refuses to start (`Keyring.stated`);
an app built directly (tests, embedding) runs without keys and says so loudly.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import Unauthorized
from orchestrator.settings import Settings

SCHEMES = ("api-key", "bearer")
KEY_ID_CHARS = 16  # 64 bits of a hash of the digest: unique among any real number of keys


class KeysMisconfigured(Exception):
    """The keys configured cannot be used (a file missing or without keys); the service must not start."""


@dataclass(frozen=True)
class Caller:
    """Who made a request: `key_id` ("" when the service runs without keys) and whether it is an admin."""

    key_id: str
    admin: bool = False

    def may_see(self, owner: str) -> bool:
        """A job is its owner's (or any admin's): every other key is told it does not exist."""
        return self.admin or owner == self.key_id

    @property
    def limited(self) -> bool:
        """Per-key limits apply to keys; without auth the fleet's own limits are the only ones."""
        return bool(self.key_id)


ANONYMOUS = Caller("")  # auth off: one tenant, whose jobs have owner ""


@dataclass(frozen=True)
class Keyring:
    """The configured keys as (digest, admin) pairs; empty: auth off."""

    keys: tuple[tuple[bytes, bool], ...]
    configured: bool  # auth off by a stated choice, rather than because nothing was set

    @property
    def on(self) -> bool:
        return bool(self.keys)

    @property
    def stated(self) -> bool:
        """Keys, or auth off by choice: what `longscribe serve` needs before it starts."""
        return self.on or self.configured


def load(settings: Settings) -> Keyring:
    """The keyring the settings describe; KeysMisconfigured when they cannot be used as stated."""
    _not_all_blank(settings.api_keys or [], "LONGSCRIBE_API_KEYS")
    _not_all_blank(settings.admin_api_keys, "LONGSCRIBE_ADMIN_API_KEYS")
    users = [*(settings.api_keys or []), *_file_keys(settings.api_keys_file, "LONGSCRIBE_API_KEYS_FILE")]
    admins = [*settings.admin_api_keys, *_file_keys(settings.admin_api_keys_file, "LONGSCRIBE_ADMIN_API_KEYS_FILE")]
    users, admins = [k.strip() for k in users if k.strip()], [k.strip() for k in admins if k.strip()]
    if settings.no_auth and (users or admins):
        raise KeysMisconfigured(
            "--no-auth (LONGSCRIBE_NO_AUTH) was asked for, but API keys are configured: choose one "
            "(unset LONGSCRIBE_API_KEYS, LONGSCRIBE_API_KEYS_FILE and the admin keys to run without auth)"
        )
    digests = {_digest(k): False for k in users}
    digests.update({_digest(k): True for k in admins})  # a key in both lists is an admin
    stated = settings.no_auth or settings.api_keys is not None
    return Keyring(tuple(digests.items()), configured=stated)


def _not_all_blank(keys: list[str], setting: str) -> None:
    """A list of keys that are all blank is a template whose secret was never filled in, not auth off."""
    if keys and not any(k.strip() for k in keys):
        raise KeysMisconfigured(
            f"{setting} lists only blank keys (an unset secret?); give real keys, or run without auth on "
            f'purpose with `longscribe serve --no-auth` or {setting}="" or []'
        )


def _file_keys(path: Path | None, setting: str) -> list[str]:
    if path is None:
        return []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise KeysMisconfigured(f"{setting}={path} cannot be read: {exc.strerror or exc}") from exc
    keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise KeysMisconfigured(
            f"{setting}={path} holds no key (only blank lines or # comments); put one key per line, or run "
            "without auth on purpose with `longscribe serve --no-auth`"
        )
    return keys


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def key_id(digest: bytes) -> str:
    """A key's public id: a hash of its digest (never the key, nor the digest that is compared)."""
    return hashlib.sha256(b"longscribe key id:" + digest).hexdigest()[:KEY_ID_CHARS]


def check(authorization: str | None, keyring: Keyring) -> Caller:
    """The caller the header names; Unauthorized unless it carries a configured key (ANONYMOUS when auth is off)."""
    if not keyring.on:
        return ANONYMOUS
    scheme, _, key = (authorization or "").strip().partition(" ")
    if scheme.lower() not in SCHEMES or not key.strip():
        raise Unauthorized("missing API key: send `Authorization: Api-Key <key>` or `Authorization: Bearer <key>`")
    offered = _digest(key.strip())
    found: tuple[bytes, bool] | None = None
    for digest, admin in keyring.keys:  # no early exit: the time does not depend on which key matched
        if hmac.compare_digest(offered, digest):
            found = (digest, admin)
    if found is None:
        raise Unauthorized("the API key is not valid")
    return Caller(key_id(found[0]), admin=found[1])
