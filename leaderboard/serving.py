"""gunicorn workers that slow clients cannot starve.

A sync worker serves one connection at a time: two clients that send one header line every ten
seconds hold two sync workers for as long as they like, and every board request waits behind them.
:class:`GuardedThreadWorker` is gunicorn's threaded worker (``gthread``: idle keep-alive
connections wait in a poller, not in a thread) with two bounds on reading a request:

- the request line and headers must arrive within ``header_timeout`` seconds of the first byte;
- while the body is read, no single read may wait longer than ``read_timeout`` seconds.

A client that misses either is disconnected and its thread is free again. Each worker has
``threads`` threads, so a few slow clients never stop the board; a determined attacker with many
connections is a job for a buffering reverse proxy in front (README, "Deployment").
"""

from __future__ import annotations

import os
import socket
import time

from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker

HEADER_TIMEOUT_ENV = "GRADER_HEADER_TIMEOUT"
READ_TIMEOUT_ENV = "GRADER_READ_TIMEOUT"
HEADER_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0


class _BoundedUnreader(SocketUnreader):
    """Reads of a request that stop at the connection's header deadline or read timeout.

    A read that times out returns no bytes: gunicorn then sees a client that went away and
    closes the connection quietly.
    """

    def __init__(self, sock: socket.socket, conn: _GuardedConn) -> None:
        super().__init__(sock)
        self.conn = conn

    def chunk(self, *args) -> bytes:
        timeout = self.conn.read_timeout
        if self.conn.header_deadline is not None:
            timeout = min(timeout, self.conn.header_deadline - time.monotonic())
            if timeout <= 0:
                return b""
        self.sock.settimeout(timeout)
        try:
            return super().chunk(*args)
        except TimeoutError:
            return b""


class _GuardedConn(TConn):
    """A connection whose parser reads through :class:`_BoundedUnreader`."""

    header_timeout: float = HEADER_TIMEOUT_S
    read_timeout: float = READ_TIMEOUT_S
    header_deadline: float | None = None

    def init(self) -> None:
        fresh = self.parser is None
        super().init()
        # called whenever a request's first bytes are there (a new or a kept-alive connection)
        self.header_deadline = time.monotonic() + self.header_timeout
        unreader = getattr(self.parser, "unreader", None)
        if fresh and not self.is_http2 and type(unreader) is SocketUnreader:
            self.parser.unreader = _BoundedUnreader(self.sock, self)


class GuardedThreadWorker(ThreadWorker):
    """gunicorn's ``gthread`` worker with a header deadline and a body read timeout."""

    header_timeout = HEADER_TIMEOUT_S
    read_timeout = READ_TIMEOUT_S

    def init_process(self) -> None:
        self.header_timeout = float(os.environ.get(HEADER_TIMEOUT_ENV, HEADER_TIMEOUT_S))
        self.read_timeout = float(os.environ.get(READ_TIMEOUT_ENV, READ_TIMEOUT_S))
        super().init_process()

    def handle(self, conn: TConn):
        if type(conn) is TConn:
            conn.__class__ = _GuardedConn
        conn.header_timeout, conn.read_timeout = self.header_timeout, self.read_timeout
        return super().handle(conn)

    def handle_request(self, req, conn: TConn):
        conn.header_deadline = None  # the headers are in; the body is bounded per read
        return super().handle_request(req, conn)
