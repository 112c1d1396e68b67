"""
Which hosts a worker downloads a result from: none inside its own network, unless Akool's host is there too.

A result URL comes from Akool, in a poll's reply or in a webhook callback, and the worker downloads it into
``output_path``. One that names an address inside the worker's network (``http://169.254.169.254/``, where
cloud metadata services answer; ``http://10.0.0.5/``, an internal service) would make the worker fetch from
there and keep what it got. Such a URL is refused before any request, and so is every redirect to one. The
exception is a connection whose own host is such an address (the emulator, on 127.0.0.1, serves its results
from there): Akool is then inside that network as well.

The decision (:func:`refusal`) is a plain function of the addresses a name resolves to; resolving is the only
I/O, once before each request. A name whose DNS answer changes between the check and the connection (DNS
rebinding) is not caught here: keep the workers' egress to metadata services closed too (IMDSv2 with a hop
limit of 1, a network policy).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_akool.exceptions import AkoolResultHostError

#: Redirects a download follows, each checked like the first URL (requests would follow 30 unchecked).
MAX_REDIRECTS = 5


def address_kind(address: str) -> str | None:
    """Return what kind of non-public address ``address`` is (``"link-local"``, ...), or None if public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 link-local address may carry a zone
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    kinds = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("unspecified", ip.is_unspecified),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
    )
    kind = next((name for name, matches in kinds if matches), None)
    return kind or (None if ip.is_global else "non-public")


def refusal(host: str, addresses: Iterable[str]) -> str | None:
    """Return why a result must not be downloaded from ``host``, given what it resolves to, or None."""
    for address in addresses:
        kind = address_kind(address)
        if kind is not None:
            if host == address:
                return f"{host} is a {kind} address"
            return f"{host} resolves to {address}, a {kind} address"
    return None


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return (parts.hostname or "").strip("[]"), port


def _addresses(infos: Iterable[tuple[Any, Any, Any, Any, tuple[Any, ...]]]) -> list[str]:
    return [str(info[4][0]) for info in infos]


def resolve(url: str) -> tuple[str, list[str]]:
    """Return the host of ``url`` and the addresses it resolves to (none when it does not resolve)."""
    host, port = _host_port(url)
    try:
        return host, _addresses(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except (OSError, UnicodeError):
        return host, []  # nothing to connect to: the download fails on its own, with its own error


async def aresolve(url: str) -> tuple[str, list[str]]:
    """Return the host of ``url`` and the addresses it resolves to, without blocking the event loop."""
    host, port = _host_port(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return host, []
    return host, _addresses(infos)


def own_host_is_private(base_url: str, addresses: Iterable[str]) -> bool:
    """Whether the connection's own host (``base_url``, resolved to ``addresses``) is a non-public one."""
    return refusal(_host_port(base_url)[0], addresses) is not None


def check(url: str, addresses: Iterable[str], *, own_host_private: bool, redirected_from: str | None) -> None:
    """Raise :class:`AkoolResultHostError` if the result at ``url`` must not be downloaded."""
    if own_host_private:
        return
    host = _host_port(url)[0]
    why = refusal(host, addresses)
    if why is None:
        return
    via = f" (where {_host_port(redirected_from)[0]} redirected the download)" if redirected_from else ""
    raise AkoolResultHostError(
        f"refused to download the result from {host}{via}: {why}. A worker downloads results only from "
        "public addresses: a loopback, private or link-local one reaches into the worker's own network (the "
        "cloud metadata service answers at 169.254.169.254), unless the akool connection's own host is such "
        "an address too. The URL came from Akool's reply or from a webhook callback",
        endpoint="download",
    )
