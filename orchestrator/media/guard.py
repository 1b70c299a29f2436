"""Where the service may connect to: public addresses, and what a setting allows.

Two policies, each with its own allow-list: media URLs (allowed_media_hosts)
and webhook URLs (allowed_webhook_hosts). A webhook URL is also checked when
a job is submitted (`check_url`: parsed, then its host resolved), so a bad
one is a 422 at once, not a delivery retried until the job expires. A
refusal names the host as given, never the addresses it resolved to: those
would map the private network for whoever asks.

A media URL is a stranger's: without this it could make the service read its
own cloud metadata (169.254.169.254), a database on the private network or
an admin page on loopback. The check is on the addresses a host resolves to,
at connect time, so the address checked is the address used (no DNS
rebinding between check and use), and every redirect hop is checked again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from multidict import CIMultiDictProxy
from yarl import URL

from orchestrator.errors import InvalidWebhook, LongscribeError, MediaForbidden, MediaHttpError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
REDIRECTS = (301, 302, 303, 307, 308)
MAX_URL_CHARS = 2048  # what browsers and proxies reliably carry
RESOLVE_TIMEOUT_S = 5.0  # DNS at submit: a slow resolver must not hold the request

# Makes the DNS a guarded client or check asks (each owns and closes its own): the system's unless a test
# injects one (create_app's `host_resolver`), so the policy is tested on names without the network.
ResolverFactory = Callable[[], AbstractResolver]
SYSTEM_RESOLVER: ResolverFactory = DefaultResolver


# FFmpeg reads only the relay (plain http on loopback), and only containers that
# hold their own media: a playlist (HLS, DASH, concat) would send it to URLs
# of the file's choosing, past the relay's checks.
DEMUXERS = (
    "aac,ac3,aiff,amr,ape,asf,au,avi,caf,dts,eac3,flac,flv,matroska,webm,mov,mp4,m4a,3gp,3g2,mj2,"
    "mp3,mpeg,mpegts,mxf,ogg,opus,tta,w64,wav,wv"
)
INPUT_GUARD = ["-protocol_whitelist", "http,tcp", "-format_whitelist", DEMUXERS]


@dataclass(frozen=True)
class AddressPolicy:
    """Public unicast addresses are allowed; others only when listed. `field` and `error` name a refusal."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()
    field: str = "media_url"  # the request field whose URL this policy checks
    error: type[LongscribeError] = MediaForbidden

    @classmethod
    def from_list(
        cls, allowed: list[str], field: str = "media_url", error: type[LongscribeError] = MediaForbidden
    ) -> AddressPolicy:
        """Entries are CIDR networks, addresses or host names (`127.0.0.0/8`, `::1`, `media.internal`)."""
        networks: list[Network] = []
        hosts: set[str] = set()
        for entry in allowed:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts), field, error)

    def refusal(self, host: str) -> LongscribeError:
        """The error for a host whose addresses are not allowed; the addresses themselves stay unsaid."""
        return self.error(
            f"{self.field}'s host {host} is a private, loopback or reserved address, which this service does "
            "not connect to"
        )

    def allows(self, host: str, address: str) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        ip = _address(address)
        if ip is None:
            return False
        if self._listed(ip):
            return True
        carried = _carried(ip)
        if carried is None:
            return False
        if carried and all(self._listed(inner) for inner in carried):  # 64:ff9b::7f00:1 under 127.0.0.0/8
            return True
        return _is_public(ip) and all(_is_public(inner) for inner in carried)

    def _listed(self, ip: Address) -> bool:
        return any(ip in net for net in self.networks if net.version == ip.version)


def media_policy(allowed: list[str]) -> AddressPolicy:
    return AddressPolicy.from_list(allowed, "media_url", MediaForbidden)


def webhook_policy(allowed: list[str]) -> AddressPolicy:
    return AddressPolicy.from_list(allowed, "webhook_url", InvalidWebhook)


def _address(text: str) -> Address | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    return ip


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix: the IPv4 is the last 32 bits
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: where the IPv4 sits depends on the prefix length
SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765's IPv4-translated addresses
COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible addresses (:: and ::1 are judged as such)


def _carried(ip: Address) -> tuple[ipaddress.IPv4Address, ...] | None:
    """The IPv4 addresses an IPv6 address reaches through a translator or tunnel; None when that cannot be told.

    A NAT64, 6to4 or Teredo gateway forwards to the IPv4 inside, so 64:ff9b::7f00:1 is 127.0.0.1 to
    whoever runs one, though Python calls it global. Each carried address must be public too."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return ()
    if ip in NAT64_LOCAL:
        return None  # refused unless listed: decoding it would need the operator's prefix length
    if ip.teredo is not None:
        return ip.teredo  # (server, client), the client's obfuscation undone
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip in NAT64 or ip in SIIT or (ip in COMPATIBLE and int(ip) > 1):
        return (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)
    return ()


def _is_public(ip: Address) -> bool:
    """Global unicast: not loopback, private, link-local (cloud metadata), shared, reserved or multicast."""
    return ip.is_global and not ip.is_multicast


class GuardedResolver(AbstractResolver):
    """DNS that answers only with the addresses the policy allows, else refuses the host."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or SYSTEM_RESOLVER()

    @property
    def inner(self) -> AbstractResolver:
        """The DNS asked before the policy judges its answers."""
        return self._inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        allowed = [a for a in answers if self._policy.allows(host, a["host"])]
        if not allowed:
            raise self._policy.refusal(host)
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def check_literal(url: URL, policy: AddressPolicy) -> None:
    """aiohttp does not resolve an IP-literal host, so the resolver never sees it: check it here."""
    host = url.host or ""
    if _address(host) is not None and not policy.allows(host, host):
        raise policy.refusal(host)


def parse_url(text: str, policy: AddressPolicy) -> URL:
    """`text` as an absolute http(s) URL with a host, no credentials, a valid port: else policy's error."""
    name = policy.field
    if len(text) > MAX_URL_CHARS:
        raise policy.error(f"{name} is longer than {MAX_URL_CHARS} characters")
    try:
        url = URL(text)
        port = url.port  # an out-of-range port raises only when read
    except (ValueError, TypeError) as exc:
        raise policy.error(f"{name} is not a valid URL: {exc}") from exc
    if url.scheme not in ("http", "https"):
        raise policy.error(f"{name} must be an http(s) URL, not {url.scheme or 'a relative'}: one")
    if not url.host:
        raise policy.error(f"{name} has no host")
    if url.user is not None or url.password is not None:
        raise policy.error(f"{name} must not carry a user or password; sign with LONGSCRIBE_WEBHOOK_SECRET instead")
    if port is not None and not 0 < port < 65536:
        raise policy.error(f"{name}'s port {port} is not a port")
    return url


async def check_url(text: str, policy: AddressPolicy, dns: ResolverFactory = SYSTEM_RESOLVER) -> URL:
    """Parse `text` and resolve its host now (through `dns`): refused (policy's error) unless an address it
    has is allowed.

    Delivery checks again at connect time (the address may change); this makes a bad URL a 422 at once."""
    url = parse_url(text, policy)
    host = url.host or ""
    check_literal(url, policy)
    if _address(host) is not None:
        return url
    resolver = GuardedResolver(policy, dns())
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            await resolver.resolve(host, url.port or 0, socket.AF_UNSPEC)
    except (OSError, TimeoutError) as exc:
        raise policy.error(f"{policy.field}'s host {host} does not resolve") from exc
    finally:
        await resolver.close()
    return url


# FFmpeg often reads a few bytes and hangs up (a header, then a seek). Socket
# buffers left to autotune would pull megabytes from the media server first.
SOCKET_BUFFER_BYTES = 128 * 1024


def _small_buffer_socket(addr_info: Any) -> socket.socket:
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=kind, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    return sock


def session(policy: AddressPolicy, dns: ResolverFactory = SYSTEM_RESOLVER) -> aiohttp.ClientSession:
    """An HTTP client whose every connection the policy allows (hosts resolved through `dns`): one for media,
    one for webhooks."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(policy, dns()), ttl_dns_cache=10, limit=64, socket_factory=_small_buffer_socket
    )
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


async def get(
    client: aiohttp.ClientSession,
    url: str,
    policy: AddressPolicy,
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
