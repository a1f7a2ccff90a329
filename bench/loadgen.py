"""A cheap closed-loop HTTP/1.1 load generator on bare asyncio.

The generator shares the machine with the server, so every microsecond it
spends per request is taken from the server. It therefore speaks just enough
HTTP/1.1 by hand on an `asyncio.Protocol`: it writes prebuilt request bytes,
finds the end of the headers, reads `Content-Length` bytes and keeps the
connection alive unless the server says `Connection: close` (gunicorn's sync
workers do), in which case it reconnects.

`concurrency` virtual users each send a request, wait for the whole answer and
send the next one, until the phase's deadline (a closed loop: throughput is
what the server sustains at that concurrency, latency is end to end).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

# Status used for failures below HTTP (refused, reset, timed out, bad framing).
TRANSPORT_ERROR = 0


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 that this client understands."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    # Not sent: what kind of request this is ("hot", "spread", "complete"...), so
    # that the report can give each kind's latency apart.
    tag: str = ""

    def encode(self, host: str) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}"]
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        if self.body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


class _HttpClientProtocol(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.server_wants_close = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError(f"connection lost: {exc or 'closed by server'}"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            response = self._parse()
        except ProtocolError as exc:
            waiter.set_exception(exc)
            return
        if response is not None:
            waiter.set_result(response)

    def _parse(self) -> Response | None:
        buffer = self._buffer
        header_end = buffer.find(b"\r\n\r\n")
        if header_end < 0:
            return None
        head = bytes(buffer[:header_end]).lower()
        if not head.startswith(b"http/1."):
            raise ProtocolError(f"not an HTTP/1.x status line: {head[:40]!r}")
        status = int(head[9:12])
        length_at = head.find(b"\r\ncontent-length:")
        if length_at < 0:
            raise ProtocolError("response without Content-Length")
        line_end = head.find(b"\r\n", length_at + 2)
        length = int(head[length_at + 17 : line_end if line_end >= 0 else len(head)])
        body_start = header_end + 4
        if len(buffer) < body_start + length:
            return None
        body = bytes(buffer[body_start : body_start + length])
        del buffer[: body_start + length]
        self.server_wants_close = b"\r\nconnection: close" in head
        return Response(status, body)

    def send(self, payload: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self._waiter

    def time_out(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError("no answer in time"))
        self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


class Connection:
    """A client connection that reconnects when the server closes it.

    There is no per-request timer (`asyncio.wait_for` costs a task per call);
    a `Watchdog` closes connections whose request has been out too long.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._protocol: _HttpClientProtocol | None = None
        self.connects = 0
        self.sent_at_ns = 0  # 0 when no request is in flight

    async def request(self, payload: bytes) -> Response:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            _, protocol = await asyncio.get_running_loop().create_connection(
                _HttpClientProtocol, self.host, self.port
            )
            self._protocol = protocol
            self.connects += 1
        self.sent_at_ns = time.perf_counter_ns()
        try:
            response = await protocol.send(payload)
        except BaseException:
            protocol.close()
            self._protocol = None
            raise
        finally:
            self.sent_at_ns = 0
        if protocol.server_wants_close:
            protocol.close()
            self._protocol = None
        return response

    def abort_if_older_than(self, now_ns: int, timeout_ns: int) -> None:
        if self.sent_at_ns and now_ns - self.sent_at_ns > timeout_ns and self._protocol:
            self._protocol.time_out()

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None


class Watchdog:
    """Fails requests that have waited longer than `timeout` seconds."""

    def __init__(self, connections: list[Connection], timeout: float) -> None:
        self._connections = connections
        self._timeout_ns = int(timeout * 1e9)
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.perf_counter_ns()
            for connection in self._connections:
                connection.abort_if_older_than(now, self._timeout_ns)

    def __enter__(self) -> Watchdog:
        self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()


# Builds the next request of a virtual user (argument: the user's index).
RequestFactory = Callable[[int], Request]
# Sees every answer (user index, request, response), e.g. to collect booking ids.
ResponseHook = Callable[[int, Request, Response], None]


@dataclass
class PhaseResult:
    name: str
    concurrency: int
    duration_s: float = 0.0
    latencies_ns: list[int] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    connects: int = 0
    client_cpu_s: float = 0.0
    # Latencies by (request tag, status), for requests that carry a tag.
    tagged_ns: dict[tuple[str, int], list[int]] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


async def run_phase(
    *,
    name: str,
    host: str,
    port: int,
    concurrency: int,
    seconds: float,
    make_request: RequestFactory,
    on_response: ResponseHook | None = None,
    timeout: float = 30.0,
    max_error_samples: int = 10,
) -> PhaseResult:
    """Run `concurrency` closed-loop users for `seconds` and collect what happened."""
    result = PhaseResult(name=name, concurrency=concurrency)
    host_header = f"{host}:{port}"
    latencies = result.latencies_ns
    statuses = result.statuses
    tagged = result.tagged_ns
    perf = time.perf_counter_ns
    cpu_before = time.process_time()
    started = perf()
    deadline = started + int(seconds * 1e9)

    def note_error(text: str) -> None:
        if len(result.error_samples) < max_error_samples:
            result.error_samples.append(text)

    connections = [Connection(host, port) for _ in range(concurrency)]

    async def user(index: int) -> None:
        connection = connections[index]
        try:
            while perf() < deadline:
                request = make_request(index)
                payload = request.encode(host_header)
                begun = perf()
                try:
                    response = await connection.request(payload)
                except (OSError, ProtocolError, TimeoutError) as exc:
                    statuses[TRANSPORT_ERROR] += 1
                    latencies.append(perf() - begun)
                    note_error(f"{request.method} {request.path}: {type(exc).__name__}: {exc}")
                    continue
                took = perf() - begun
                latencies.append(took)
                statuses[response.status] += 1
                if request.tag:
                    tagged.setdefault((request.tag, response.status), []).append(took)
                if response.status >= 500 or response.status in (400, 401, 403, 404, 429):
                    note_error(
                        f"{request.method} {request.path} -> {response.status}: "
                        f"{response.body[:300].decode('utf-8', 'replace')}"
                    )
                if on_response is not None:
                    on_response(index, request, response)
        finally:
            result.connects += connection.connects
            connection.close()

    with Watchdog(connections, timeout):
        await asyncio.gather(*(user(i) for i in range(concurrency)))
    result.duration_s = (perf() - started) / 1e9
    result.client_cpu_s = time.process_time() - cpu_before
    return result


async def send(host: str, port: int, request: Request, timeout: float = 30.0) -> Response:
    """One request on a fresh connection (health checks, smoke tests)."""
    connection = Connection(host, port)
    try:
        return await asyncio.wait_for(connection.request(request.encode(f"{host}:{port}")), timeout)
    finally:
        connection.close()
