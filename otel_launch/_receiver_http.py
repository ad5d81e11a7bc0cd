"""The OTLP receiver's HTTP/1.1 server: one asyncio loop, bounded in connections, time and bytes.

Waiting costs no thread: a connection is a coroutine while it sends its headers, its body or
nothing (keep-alive), and only a whole request reaches the handler, on a small thread pool.

- At most ``max_connections`` open connections; one more is answered 503 and closed.
- The request head within ``header_timeout`` seconds of the connection or of the previous
  answer (the Collector's read-header and idle time-outs, one minute), the body within
  ``body_timeout``; a body too slow is answered 408.
- Bodies framed by ``Content-Length`` or chunked; neither is 411, both 400, another transfer
  coding 501. More than ``max_body`` bytes is 413, answered at once; then up to
  ``DRAIN_BYTES`` of the rest are read and dropped, so that a client that sends its whole body
  before reading (as most do) reads the 413 instead of a reset connection.
- At most ``body_budget`` bytes of bodies held at once; a request that cannot get its share
  within ``body_timeout`` is answered 503 (exporters retry it).

A refusal decided from the head alone (``screen``) is answered without reading the body,
which is then drained the same way. Every refusal closes the connection.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus

HEAD_LIMIT = 64 * 1024  # request line and headers
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0
DRAIN_IDLE = 1.0
WRITE_TIMEOUT = 30.0


@dataclass
class Request:
    method: str
    path: str  # without the query
    headers: Message
    body: bytes = b""


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/x-protobuf"
    headers: dict[str, str] = field(default_factory=dict)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Budget:
    """Bytes of request bodies held at once, across connections."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Condition()

    async def acquire(self, size: int, timeout: float) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.used + size <= self.limit), timeout)
            self.used += size

    async def release(self, size: int) -> None:
        async with self._changed:
            self.used -= size
            self._changed.notify_all()


class BoundedHTTPServer:
    """Serves ``handle(Request) -> Response`` on ``sock`` (already listening) from a thread of its own.

    ``screen(method, path, headers)`` may refuse a request from its head (a Response) before
    the body is read; ``refusal(status, message)`` makes the body of every refusal.
    """

    def __init__(
        self,
        sock: socket.socket,
        handle: Callable[[Request], Response],
        screen: Callable[[str, str, Message], Response | None],
        refusal: Callable[[int, str], Response],
        *,
        max_body: int,
        max_connections: int = 128,
        header_timeout: float = 60.0,
        body_timeout: float = 30.0,
        body_budget: int | None = None,
        workers: int = 2,
    ) -> None:
        self._sock = sock
        self._handle = handle
        self._screen = screen
        self._refusal = refusal
        self.max_body = max_body
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.body_budget = max(body_budget or 2 * max_body, max_body)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-http")
        self._loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.AbstractServer | None = None
        self._budget: _Budget | None = None
        self._thread: threading.Thread | None = None

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        async def begin() -> None:
            self._budget = _Budget(self.body_budget)
            self._server = await asyncio.start_server(self._connection, sock=self._sock, limit=HEAD_LIMIT)

        self._loop.run_until_complete(begin())
        self._thread = threading.Thread(target=self._loop.run_forever, name="otlp-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the listening socket and every connection; return once they are closed."""
        if self._thread is None:
            self._sock.close()
            return

        async def end() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.sleep(0)  # let the closed transports finish closing before the loop does

        try:
            asyncio.run_coroutine_threadsafe(end(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None
            if not self._loop.is_running():
                self._loop.close()
            self._sock.close()
            self._pool.shutdown(wait=False)

    # -- one connection --------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if len(self._tasks) > self.max_connections:
                refusal = self._refusal(503, f"more than {self.max_connections} connections at once; retry")
                refusal.headers["Retry-After"] = "1"
                await self._send(writer, refusal, close=True)
                return
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # stop() closes every connection; ending normally keeps asyncio from logging it
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; whether the connection stays open for another."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.header_timeout
        try:
            first = await asyncio.wait_for(reader.readexactly(1), self.header_timeout)
            if not (first.isupper() or first in b"\r\n"):  # not a method: a TLS hello, or noise
                await self._send(writer, self._refusal(400, "not an HTTP request (TLS to a plain port?)"), True)
                return False
            head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), max(deadline - loop.time(), 0))
        except asyncio.LimitOverrunError:
            await self._send(writer, self._refusal(431, f"request head over {HEAD_LIMIT} bytes"), close=True)
            return False
        except (asyncio.IncompleteReadError, asyncio.TimeoutError):
            return False  # closed or idle: nothing to answer
        request_line, _, rest = head.lstrip(b"\r\n").partition(b"\r\n")
        parts = request_line.decode("latin-1").split()
        if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
            await self._send(writer, self._refusal(400, "not an HTTP/1.x request line"), close=True)
            return False
        method, target, version = parts
        try:
            headers = http.client.parse_headers(io.BytesIO(rest))
        except http.client.HTTPException as exc:
            await self._send(writer, self._refusal(431, f"request headers refused: {exc}"), close=True)
            return False
        connection = {token.strip().lower() for token in headers.get("Connection", "").split(",")}
        keep_alive = version == "HTTP/1.1" and "close" not in connection
        expects_continue = headers.get("Expect", "").strip().lower() == "100-continue"
        try:
            length = self._framing(method, headers)
        except _Refused as refused:
            await self._send(writer, self._refusal(refused.status, str(refused)), close=True)
            return False
        early = self._screen(method, target.partition("?")[0], headers)
        if early is None and length is not None and length > self.max_body:
            early = self._refusal(413, f"request of {length} bytes; at most {self.max_body}")
        if early is not None:
            await self._refuse_unread(reader, writer, early, length, expects_continue)
            return False
        reserved = self.max_body if length is None else length
        assert self._budget is not None
        try:
            await self._budget.acquire(reserved, self.body_timeout)
        except asyncio.TimeoutError:
            busy = self._refusal(503, "too many request bodies at once; retry")
            busy.headers["Retry-After"] = "1"
            await self._refuse_unread(reader, writer, busy, length, expects_continue)
            return False
        try:
            if expects_continue:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                body = await asyncio.wait_for(self._body(reader, length), self.body_timeout)
            except asyncio.TimeoutError:
                await self._send(writer, self._refusal(408, f"body not received within {self.body_timeout:g} s"), True)
                return False
            except _Refused as refused:
                await self._refuse_unread(reader, writer, self._refusal(refused.status, str(refused)), None, False)
                return False
            request = Request(method, target.partition("?")[0], headers, body)
            del body
            try:
                response = await loop.run_in_executor(self._pool, self._handle, request)
            except Exception as exc:  # noqa: BLE001 - the handler's failure is the client's 500, never the server's end
                response = self._refusal(500, f"the request could not be handled: {type(exc).__name__}")
            del request
        finally:
            await self._budget.release(reserved)
        await self._send(writer, response, close=not keep_alive)
        return keep_alive

    @staticmethod
    def _framing(method: str, headers: Message) -> int | None:
        """The body's length, or None when it is chunked."""
        codings = [c.strip().lower() for value in headers.get_all("Transfer-Encoding", []) for c in value.split(",")]
        lengths = {value.strip() for value in headers.get_all("Content-Length", [])}
        if codings:
            if lengths:
                raise _Refused(400, "both Transfer-Encoding and Content-Length")
            if codings != ["chunked"]:
                raise _Refused(501, f"transfer coding {', '.join(codings)[:60]!r} is not supported; use chunked")
            return None
        if lengths:
            (value, *others) = sorted(lengths)
            if others or not value.isdigit():
                raise _Refused(400, "Content-Length is not one number of bytes")
            return int(value)
        if method == "POST":
            raise _Refused(411, "a body needs Content-Length or chunked Transfer-Encoding")
        return 0

    async def _body(self, reader: asyncio.StreamReader, length: int | None) -> bytes:
        if length is not None:
            return await reader.readexactly(length)
        chunks, total = [], 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _Refused(400, "bad chunk size") from None
            if size < 0:
                raise _Refused(400, "bad chunk size")
            if size == 0:
                break
            total += size
            if total > self.max_body:
                raise _Refused(413, f"chunked request over {self.max_body} bytes")
            chunks.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise _Refused(400, "chunk not followed by CRLF")
        for _ in range(100):  # trailer fields, up to the empty line
            if await reader.readuntil(b"\r\n") == b"\r\n":
                return b"".join(chunks)
        raise _Refused(400, "too many trailer fields")

    async def _refuse_unread(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        response: Response,
        length: int | None,
        expects_continue: bool,
    ) -> None:
        """Answer now, then read and drop what the client still sends (bounded), then close."""
        await self._send(writer, response, close=True)
        if expects_continue or length == 0:
            return  # a client that asked first sends no body after a refusal
        loop = asyncio.get_running_loop()
        remaining = DRAIN_BYTES if length is None else min(length, DRAIN_BYTES)
        deadline = loop.time() + DRAIN_SECONDS
        while remaining > 0:
            wait = min(DRAIN_IDLE, deadline - loop.time())
            if wait <= 0:
                return
            try:
                chunk = await asyncio.wait_for(reader.read(min(256 * 1024, remaining)), wait)
            except asyncio.TimeoutError:
                return
            if not chunk:
                return
            remaining -= len(chunk)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, response: Response, close: bool) -> None:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = "Status"
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            *(f"{name}: {value}" for name, value in response.headers.items()),
        ]
        if close:
            lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
