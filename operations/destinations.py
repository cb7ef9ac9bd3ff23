"""Where ``http_request`` may go: an allow-list of hosts and networks, and a switch against internal addresses.

Checked where aiohttp resolves a host name to the addresses it will connect to (so a name that
resolves to 127.0.0.1, or changes what it resolves to, is caught), and for hosts given as addresses,
which aiohttp does not resolve, on the first URL and on every redirect.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from operations.errors import PermanentOperationError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(PermanentOperationError):
    """The request would reach an address the settings forbid."""


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """``TASKFLOW_HTTP_ALLOWED_HOSTS`` and ``TASKFLOW_HTTP_BLOCK_PRIVATE``, parsed; the default allows all."""

    hosts: tuple[str, ...] = ()  # lower-cased names; ".example.org" also allows its sub-domains
    networks: tuple[Network, ...] = ()
    block_private: bool = False

    @classmethod
    def parse(cls, allowed: str, *, block_private: bool = False) -> DestinationPolicy:
        """Entries separated by commas: host names, ``*.domain``, addresses or networks (``10.0.0.0/8``)."""
        hosts: list[str] = []
        networks: list[Network] = []
        for raw in allowed.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if not _is_host_pattern(entry):
                    message = f"{raw.strip()!r} is neither a host name, '*.domain', an address nor a network"
                    raise ValueError(message) from None
                hosts.append(entry.removeprefix("*"))
        return cls(tuple(hosts), tuple(networks), block_private)

    @property
    def allows_all(self) -> bool:
        """Whether nothing is checked (the default)."""
        return not (self.hosts or self.networks or self.block_private)

    def check(self, host: str, addresses: list[str]) -> None:
        """``DestinationRefused`` unless ``host``, resolved to ``addresses``, may be reached."""
        host = host.lower().rstrip(".")
        named = any(host == h or (h.startswith(".") and host.endswith(h)) for h in self.hosts)
        for text in addresses:
            address = _address(text)
            listed = any(address in network for network in self.networks)
            if (self.hosts or self.networks) and not (named or listed):
                raise DestinationRefused(f"{host} ({address}) is not on TASKFLOW_HTTP_ALLOWED_HOSTS")
            if self.block_private and _internal(address) and not listed:
                raise DestinationRefused(
                    f"{host} is a private, loopback or link-local address ({address}), "
                    "refused by TASKFLOW_HTTP_BLOCK_PRIVATE"
                )

    def check_url(self, url: URL) -> None:
        """Check a URL whose host is an address (names are checked when they are resolved)."""
        host = (url.raw_host or "").strip("[]")
        if _is_address(host):
            self.check(host, [host])


def session(policy: DestinationPolicy) -> aiohttp.ClientSession:
    """A client session that refuses the destinations ``policy`` forbids."""
    if policy.allows_all:
        return aiohttp.ClientSession()
    trace = aiohttp.TraceConfig()

    async def on_start(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        policy.check_url(params.url)

    async def on_redirect(_: Any, __: Any, params: aiohttp.TraceRequestRedirectParams) -> None:
        location = params.response.headers.get("Location")
        if location:
            policy.check_url(params.response.url.join(URL(location)))

    trace.on_request_start.append(on_start)
    trace.on_request_redirect.append(on_redirect)
    connector = aiohttp.TCPConnector(resolver=_CheckingResolver(policy))
    return aiohttp.ClientSession(connector=connector, trace_configs=[trace])


class _CheckingResolver(AbstractResolver):
    """aiohttp's resolver, refusing a name whose addresses the policy forbids."""

    def __init__(self, policy: DestinationPolicy) -> None:
        self._policy = policy
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        self._policy.check(host, [item["host"] for item in found])
        return found

    async def close(self) -> None:
        await self._resolver.close()


def _address(text: str) -> Address:
    address = ipaddress.ip_address(text.split("%")[0])  # without an IPv6 zone ("fe80::1%eth0")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


def _internal(address: Address) -> bool:
    return address.is_private or address.is_loopback or address.is_link_local or address.is_unspecified


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


def _is_host_pattern(entry: str) -> bool:
    name = entry.removeprefix("*.").removeprefix(".")
    labels = name.split(".")
    return bool(name) and all(label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels)
