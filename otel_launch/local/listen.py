"""Listening sockets and ``Host`` checks for the local tools (``ui``, ``tail`` and their receiver).

Every listening socket sets ``SO_REUSEADDR``, so that a tool restarts on its ports at once after
a stop, a crash or a burst of exports (the connections it closed sit in TIME_WAIT). Linux still
refuses a second listener on a port in use, which ``SO_REUSEPORT`` (never set) would allow.

"All interfaces" is one address family for every port: IPv6 ``::`` accepting IPv4 too
(``IPV6_V6ONLY`` off), which is what gRPC itself binds for a wildcard address; IPv4 ``0.0.0.0``
only where the machine has no IPv6.

A page or API bound to loopback answers only to a loopback ``Host`` (``localhost`` or a
loopback address, any port), as Jupyter does without ``allow_remote_access``: a page on
another site whose name was re-bound to 127.0.0.1 (DNS rebinding) still sends its own name.

Also the options ``tail`` and ``ui`` share: a port, a size in bytes, and starting a receiver
with a one-line error.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from typing import Any, Protocol

import click

BACKLOG = 128
# The click type of a port option (0: any free port).
PORT_TYPE = click.IntRange(0, 65535)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


@functools.cache
def all_interfaces() -> str:
    """``::`` (IPv6 and IPv4) where the machine has IPv6, else ``0.0.0.0``."""
    if not socket.has_ipv6:
        return "0.0.0.0"
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            probe.bind(("::", 0))
    except OSError:
        return "0.0.0.0"
    return "::"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _prepare(host: str) -> socket.socket:
    sock = socket.socket(_family(host))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if host == "::":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    return sock


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (restartable at once, never shared); raises OSError."""
    sock = _prepare(host)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def port_free(host: str, port: int) -> OSError | None:
    """None when ``host:port`` can be listened on now, else the error a bind gives."""
    with _prepare(host) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None


def shown_host(host: str) -> str:
    """``host`` as it goes in a URL: IPv6 in brackets."""
    return f"[{host}]" if ":" in host else host


def is_loopback_address(host: str) -> bool:
    """Whether a bind address reaches this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_host(header: str | None) -> bool:
    """Whether an HTTP ``Host`` header names this machine: ``localhost`` or a loopback address,
    with or without a port. A name a DNS server answers for (even with 127.0.0.1) is not."""
    if not header:
        return False
    header = header.strip()
    if header.startswith("["):
        name, bracket, rest = header[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return False
    else:
        name, colon, port = header.partition(":")
        if colon and not port.isdigit():
            return False
    if name.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def size_text(size: int) -> str:
    for unit in ("G", "M", "K"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]} {unit}iB"
    return f"{size} bytes"


class Size(click.ParamType):
    """A number of bytes: ``64M``, ``1G``, ``512K`` (binary units) or plain bytes, at least ``minimum``."""

    name = "SIZE"

    def __init__(self, minimum: int) -> None:
        self.minimum = minimum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        found = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", str(value), re.IGNORECASE)
        if not found:
            self.fail(f"{str(value)[:40]!r} is not a size (bytes, or a number with K, M or G)", param, ctx)
        size = int(found.group(1)) * _UNITS[found.group(2).upper()]
        if size < self.minimum:
            self.fail(f"{str(value)[:40]!r} is under the least it can be, {size_text(self.minimum)}", param, ctx)
        return size


_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def age_text(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= _SECONDS[unit] and seconds % _SECONDS[unit] == 0:
            return f"{int(seconds // _SECONDS[unit])}{unit} of age"
    return f"{seconds:g}s of age"


class Age(click.ParamType):
    """A duration: ``90s``, ``30m``, ``24h``, ``7d`` or plain seconds, from ``minimum`` to ``maximum`` seconds."""

    name = "AGE"

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum, self.maximum = minimum, maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value), re.IGNORECASE)
        if not found:
            self.fail(f"{str(value)[:40]!r} is not a duration (seconds, or a number with s, m, h or d)", param, ctx)
        seconds = float(found.group(1)) * _SECONDS[found.group(2).lower() or "s"]
        if not self.minimum <= seconds <= self.maximum:
            self.fail(
                f"{str(value)[:40]!r} is outside {age_text(self.minimum)[:-7]} to {age_text(self.maximum)[:-7]}",
                param,
                ctx,
            )
        return seconds


class Server(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...


def listen(receiver: Server) -> None:
    """Start the receiver (``OTLPReceiver``); a port in use is our one-line error."""
    try:
        receiver.start()
    except (OSError, RuntimeError) as exc:
        receiver.stop()
        raise click.ClickException(str(exc)) from None
