"""The OTLP receiver's HTTP/1.1 server: h11 reads and writes the protocol, one asyncio loop
bounds connections, time and bytes.

Waiting costs no thread: a connection is a coroutine while it sends its head, its body or
nothing (keep-alive), and only a whole request reaches the handler, on a small thread pool.

- At most ``max_connections`` open connections; one more is answered 503 and closed.
- The request head within ``header_timeout`` seconds of the connection or of the previous
  answer (the Collector's read-header and idle time-outs, one minute), the body within
  ``body_timeout``; a body too slow is answered 408.
- Bodies framed by ``Content-Length`` or chunked; a POST with neither is 411, both 400, another
  transfer coding 501, anything h11 cannot read 400 (or 431 for a head over ``HEAD_LIMIT``).
  More than ``max_body`` bytes is 413, answered at once; then up to ``DRAIN_BYTES`` of the rest
  are read and dropped, so that a client that sends its whole body before reading (as most do)
  reads the 413 instead of a reset connection.
- At most ``body_budget`` bytes of bodies held at once, charged as they arrive: a connection
  that announces a large body and sends nothing holds nothing. A body that cannot get its share
  within ``body_timeout`` is answered 503 (exporters retry it).

A refusal decided from the head alone (``screen``) is answered without reading the body, and
every refusal (a request h11 could not read too) is followed by the same bounded drain, then
the connection is closed. A connection that fails in a way not foreseen here is closed with one
line on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus

import h11

HEAD_LIMIT = 64 * 1024  # request line and headers; a chunk's size line and trailer
READ_BYTES = 256 * 1024
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0
DRAIN_IDLE = 1.0
WRITE_TIMEOUT = 30.0


@dataclass
class Request:
    method: str
    path: str  # without the query
    headers: list[tuple[str, str]]  # names in lower case, in the order sent
    body: bytes = b""

    def values(self, name: str) -> list[str]:
        """Every value of the header ``name`` (lower case)."""
        return [value for key, value in self.headers if key == name]

    def header(self, name: str) -> str:
        """The header's value ('' when absent); several values are joined with commas."""
        return ", ".join(self.values(name))


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
        if size:
            async with self._changed:
                self.used -= size
                self._changed.notify_all()


class BoundedHTTPServer:
    """Serves ``handle(Request) -> Response`` on ``sock`` (already listening) from a thread of its own.

    ``screen(Request)`` may refuse a request from its head (a Response) before the body is read;
    ``refusal(status, message)`` makes the body of every refusal.
    """

    def __init__(
        self,
        sock: socket.socket,
        handle: Callable[[Request], Response],
        screen: Callable[[Request], Response | None],
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
            self._server = await asyncio.start_server(self._connection, sock=self._sock)

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
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_LIMIT)
        try:
            if len(self._tasks) > self.max_connections:
                refusal = self._refusal(503, f"more than {self.max_connections} connections at once; retry")
                refusal.headers["Retry-After"] = "1"
                await self._send(conn, writer, refusal, close=True)
                return
            while await self._one_request(conn, reader, writer):
                conn.start_next_cycle()
        except (ConnectionError, asyncio.TimeoutError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # stop() closes every connection; ending normally keeps asyncio from logging it
        except Exception as exc:  # noqa: BLE001 - one connection's failure is never the server's end
            sys.stderr.write(f"otel-launch: receiver: an HTTP connection failed: {type(exc).__name__}: {exc}"[:300])
            sys.stderr.write("\n")
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _next_event(self, conn: h11.Connection, reader: asyncio.StreamReader, deadline: float) -> object:
        """The next h11 event, reading as needed until ``deadline`` (loop time)."""
        loop = asyncio.get_running_loop()
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await asyncio.wait_for(reader.read(READ_BYTES), max(deadline - loop.time(), 0))
            conn.receive_data(data)

    async def _one_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; whether the connection stays open for another."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.header_timeout
        try:
            if not conn.trailing_data[0]:
                first = await asyncio.wait_for(reader.read(READ_BYTES), self.header_timeout)
                if first and not (first[:1].isupper() or first[:1] in b"\r\n"):  # a TLS hello, or noise
                    refusal = self._refusal(400, "not an HTTP request (TLS to a plain port?)")
                    await self._send(conn, writer, refusal, close=True)
                    return False
                conn.receive_data(first)
            event = await self._next_event(conn, reader, deadline)
        except asyncio.TimeoutError:
            return False  # idle: nothing to answer
        except h11.RemoteProtocolError as exc:
            await self._refuse_broken(conn, reader, writer, exc)
            return False
        except (ValueError, TypeError) as exc:  # what an older h11 raises for some heads it cannot read
            await self._send(conn, writer, self._refusal(400, f"request head refused: {exc}"[:200]), close=True)
            return False
        if not isinstance(event, h11.Request):
            return False  # the client closed the connection
        request = Request(
            event.method.decode("ascii", "replace"),
            event.target.decode("ascii", "replace").partition("?")[0],
            [(name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers],
        )
        try:
            length = self._framing(request)
            refusal = self._screen(request)
            if refusal is None and length is not None and length > self.max_body:
                refusal = self._refusal(413, f"request of {length} bytes; at most {self.max_body}")
        except _Refused as refused:
            refusal, length = self._refusal(refused.status, str(refused)), None
        if refusal is not None:
            await self._refuse_unread(conn, reader, writer, refusal, length, request.method)
            return False
        if conn.they_are_waiting_for_100_continue:
            writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[], reason="Continue")))
        assert self._budget is not None
        charged = [0]
        try:
            try:
                request.body = await self._body(conn, reader, loop.time() + self.body_timeout, charged)
            except _Refused as refused:
                refusal = self._refusal(refused.status, str(refused))
                await self._refuse_unread(conn, reader, writer, refusal, None, request.method)
                return False
            except h11.RemoteProtocolError as exc:
                await self._refuse_broken(conn, reader, writer, exc)
                return False
            method = request.method
            try:
                response = await loop.run_in_executor(self._pool, self._handle, request)
            except Exception as exc:  # noqa: BLE001 - the handler's failure is the client's 500, never the server's end
                response = self._refusal(500, f"the request could not be handled: {type(exc).__name__}")
            del request
        finally:
            await self._budget.release(charged[0])
        await self._send(conn, writer, response, close=False, method=method)
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    @staticmethod
    def _framing(request: Request) -> int | None:
        """The body's length, or None when it is chunked (h11 has refused other transfer codings)."""
        chunked = bool(request.values("transfer-encoding"))
        lengths = request.values("content-length")
        if chunked and lengths:
            raise _Refused(400, "both Transfer-Encoding and Content-Length")
        if chunked:
            return None
        if lengths:
            return int(lengths[0])  # h11 has checked it is one number
        if request.method == "POST":
            raise _Refused(411, "a body needs Content-Length or chunked Transfer-Encoding")
        return 0

    async def _body(self, conn: h11.Connection, reader: asyncio.StreamReader, deadline: float, charged: list) -> bytes:
        """The whole body, each part charged to the budget as it arrives (``charged[0]``: bytes charged)."""
        assert self._budget is not None
        loop = asyncio.get_running_loop()
        parts = []
        while True:
            try:
                event = await self._next_event(conn, reader, deadline)
            except asyncio.TimeoutError:
                raise _Refused(408, f"body not received within {self.body_timeout:g} s") from None
            if isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            if not isinstance(event, h11.Data):
                raise h11.RemoteProtocolError("the connection closed in the middle of the body", 400)
            if charged[0] + len(event.data) > self.max_body:
                raise _Refused(413, f"chunked request over {self.max_body} bytes")
            try:
                await self._budget.acquire(len(event.data), max(deadline - loop.time(), 0))
            except asyncio.TimeoutError:
                raise _Refused(503, "too many request bodies at once; retry") from None
            charged[0] += len(event.data)
            parts.append(bytes(event.data))

    async def _refuse_broken(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, exc: Exception
    ) -> None:
        """Answer a request h11 could not read (if an answer can still be sent), drain, close."""
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = getattr(exc, "error_status_hint", 400)
            await self._send(conn, writer, self._refusal(status, f"bad request: {exc}"[:200]), close=True)
            await self._drain(reader, DRAIN_BYTES)

    async def _refuse_unread(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        response: Response,
        length: int | None,
        method: str,
    ) -> None:
        """Answer now, then read and drop what the client still sends (bounded), then close."""
        if response.status == 503:
            response.headers.setdefault("Retry-After", "1")
        expects_continue = conn.they_are_waiting_for_100_continue
        await self._send(conn, writer, response, close=True, method=method)
        if expects_continue or length == 0 or conn.their_state is not h11.SEND_BODY:
            return  # a client that asked first sends no body after a refusal
        await self._drain(reader, DRAIN_BYTES if length is None else min(length, DRAIN_BYTES))

    @staticmethod
    async def _drain(reader: asyncio.StreamReader, remaining: int) -> None:
        """Read and drop up to ``remaining`` bytes, for at most DRAIN_SECONDS (DRAIN_IDLE of quiet ends
        it): a client that writes its whole request before reading then reads the answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_SECONDS
        while remaining > 0:
            wait = min(DRAIN_IDLE, deadline - loop.time())
            if wait <= 0:
                return
            try:
                chunk = await asyncio.wait_for(reader.read(min(READ_BYTES, remaining)), wait)
            except asyncio.TimeoutError:
                return
            if not chunk:
                return
            remaining -= len(chunk)

    @staticmethod
    async def _send(
        conn: h11.Connection, writer: asyncio.StreamWriter, response: Response, close: bool, method: str = ""
    ) -> None:
        """Write the answer (its head alone to a HEAD request) and wait until it is sent."""
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = ""
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *response.headers.items(),
            *([("Connection", "close")] if close else []),
        ]
        data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=reason))
        if method != "HEAD":
            data += conn.send(h11.Data(data=response.body))
        data += conn.send(h11.EndOfMessage())
        writer.write(data)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
