"""Where the service may fetch media from: public addresses, and what a setting allows.

A media URL is a stranger's: without this it could make the service read its
own cloud metadata (169.254.169.254), a database on the private network or
an admin page on loopback. The check is on the addresses a host resolves to,
at connect time, so the address checked is the address used (no DNS
rebinding between check and use), and every redirect hop is checked again.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from multidict import CIMultiDictProxy
from yarl import URL

from orchestrator.errors import MediaForbidden, MediaHttpError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
REDIRECTS = (301, 302, 303, 307, 308)


# FFmpeg reads only the relay (plain http on loopback), and only containers that
# hold their own media: a playlist (HLS, DASH, concat) would send it to URLs
# of the file's choosing, past the relay's checks.
DEMUXERS = (
    "aac,ac3,aiff,amr,ape,asf,au,avi,caf,dts,eac3,flac,flv,matroska,webm,mov,mp4,m4a,3gp,3g2,mj2,"
    "mp3,mpeg,mpegts,mxf,ogg,opus,tta,w64,wav,wv"
)
INPUT_GUARD = ["-protocol_whitelist", "http,tcp", "-format_whitelist", DEMUXERS]


@dataclass(frozen=True)
class MediaPolicy:
    """Public unicast addresses are allowed; others only when listed."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def from_list(cls, allowed: list[str]) -> MediaPolicy:
        """Entries are CIDR networks, addresses or host names (`127.0.0.0/8`, `::1`, `media.internal`)."""
        networks: list[Network] = []
        hosts: set[str] = set()
        for entry in allowed:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def allows(self, host: str, address: str) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        ip = _address(address)
        if ip is None:
            return False
        return _is_public(ip) or any(ip in net for net in self.networks if net.version == ip.version)


def _address(text: str) -> Address | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    return ip


def _is_public(ip: Address) -> bool:
    """Global unicast: not loopback, private, link-local (cloud metadata), shared, reserved or multicast."""
    return ip.is_global and not ip.is_multicast


class GuardedResolver(AbstractResolver):
    """DNS that answers only with the addresses the policy allows, else refuses the host."""

    def __init__(self, policy: MediaPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        allowed = [a for a in answers if self._policy.allows(host, a["host"])]
        if not allowed:
            raise MediaForbidden(_refusal(host, [a["host"] for a in answers]))
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _refusal(host: str, addresses: list[str]) -> str:
    shown = ", ".join(sorted(set(addresses))[:4])
    return f"media_url's host {host} is a private or reserved address ({shown}), which this service does not fetch"


def check_literal(url: URL, policy: MediaPolicy) -> None:
    """aiohttp does not resolve an IP-literal host, so the resolver never sees it: check it here."""
    host = url.host or ""
    if _address(host) is not None and not policy.allows(host, host):
        raise MediaForbidden(_refusal(host, [host]))


# FFmpeg often reads a few bytes and hangs up (a header, then a seek). Socket
# buffers left to autotune would pull megabytes from the media server first.
SOCKET_BUFFER_BYTES = 128 * 1024


def _small_buffer_socket(addr_info: Any) -> socket.socket:
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=kind, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    return sock


def session(policy: MediaPolicy) -> aiohttp.ClientSession:
    """The only HTTP client that touches media URLs."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy), ttl_dns_cache=10, limit=64, socket_factory=_small_buffer_socket
    )
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


async def get(
    client: aiohttp.ClientSession,
    url: str,
    policy: MediaPolicy,
    max_redirects: int,
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout,
) -> aiohttp.ClientResponse:
    """GET `url`, following at most `max_redirects` http(s) redirects, each hop checked.

    The caller must release the response (`async with` or `.release()`).
    """
    target = URL(url)
    for _ in range(max_redirects + 1):
        check_literal(target, policy)
        response = await client.get(target, headers=headers, allow_redirects=False, timeout=timeout)
        if response.status not in REDIRECTS:
            return response
        location = _location(response.headers)
        response.release()
        target = URL(urljoin(str(target), location))
        if target.scheme not in ("http", "https"):
            raise MediaForbidden(
                f"media_url redirects to a {target.scheme or 'relative'}: URL; only http(s) is fetched"
            )
    raise MediaHttpError(
        f"media_url redirects more than {max_redirects} times",
        hint="Give the final URL of the media, or raise LONGSCRIBE_MAX_REDIRECTS.",
    )


def _location(headers: CIMultiDictProxy[str] | Any) -> str:
    location = headers.get("Location")
    if not location:
        raise MediaHttpError("the media server answered a redirect without a Location")
    return str(location)
