"""Blocking-socket driver: :func:`connect` and :func:`serve` over the sans-I/O engine.

Sockets get ``TCP_NODELAY`` and *kernel* timeouts (``SO_RCVTIMEO``/``SO_SNDTIMEO``):
``socket.settimeout()`` would make the descriptor non-blocking underneath.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import logging
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from atls.errors import AtlsError, HandshakeError
from atls.pipeline import CertificateVerifier
from atls.policy import Accepted
from atls.tls._credentials import ServerCredentials, utcnow
from atls.tls.engine import TLSEngine, client_engine, server_engine

__all__ = ["AttestedConnection", "Server", "connect", "serve"]

log = logging.getLogger("atls.tls")
_CHUNK = 65536


def _kernel_timeouts(sock: socket.socket, seconds: float | None) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if seconds is None:
        return
    sec = int(seconds)
    usec = int((seconds - sec) * 1_000_000)
    tv = struct.pack("ll", sec, usec)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


class AttestedConnection:
    """A blocking attested TLS connection (after a completed handshake)."""

    def __init__(self, sock: socket.socket, engine: TLSEngine) -> None:
        self.socket = sock
        self._engine = engine
        self._closed = False

    @property
    def attestation(self) -> Accepted | None:
        return self._engine.attestation

    @property
    def engine(self) -> TLSEngine:
        return self._engine

    def _io(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (BlockingIOError, TimeoutError) as e:
            raise HandshakeError("socket timed out", code="tls.timeout") from e
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                raise HandshakeError("socket timed out", code="tls.timeout") from e
            raise HandshakeError(f"socket error: {e}", code="tls.socket") from e

    def _flush(self) -> None:
        data = self._engine.data_to_send()
        if data:
            self._io(lambda: self.socket.sendall(data))

    def handshake(self) -> None:
        while True:
            try:
                done = self._engine.handshake()
            finally:
                with contextlib.suppress(HandshakeError):
                    self._flush()  # the alert after a failure must reach the peer
            if done:
                return
            data = self._io(lambda: self.socket.recv(_CHUNK))
            if not data:
                raise HandshakeError("peer closed during the handshake", code="handshake.eof")
            self._engine.receive_data(data)

    def sendall(self, data: bytes) -> None:
        self._engine.send(data)
        self._flush()

    def recv(self, max_bytes: int = _CHUNK) -> bytes:
        """Up to ``max_bytes`` of application data; ``b""`` when the peer closed."""
        while True:
            out = self._engine.recv(max_bytes)
            self._flush()
            if out is not None:
                return out
            data = self._io(lambda: self.socket.recv(_CHUNK))
            self._engine.receive_data(data)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._engine.handshake_done:
                self._engine.close()
                self._flush()
        except AtlsError:
            pass
        finally:
            self.socket.close()

    def __enter__(self) -> AttestedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    host: str,
    port: int,
    *,
    verifier: CertificateVerifier,
    timeout: float | None = 30.0,
    clock: Callable[[], _dt.datetime] = utcnow,
) -> AttestedConnection:
    """Connect and complete an attested handshake; raises on rejection (nothing is sent)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        raise HandshakeError(f"cannot connect to {host}:{port}: {e}", code="tls.connect") from e
    sock.settimeout(None)  # back to blocking; bounded by kernel timeouts instead
    _kernel_timeouts(sock, timeout)
    conn = AttestedConnection(sock, client_engine(verifier, clock=clock))
    try:
        conn.handshake()
    except BaseException:
        sock.close()
        raise
    return conn


class Server:
    """A running blocking server (see :func:`serve`)."""

    def __init__(
        self,
        sock: socket.socket,
        thread: threading.Thread,
        pool: ThreadPoolExecutor,
        stop: threading.Event,
    ) -> None:
        self.socket = sock
        self._thread = thread
        self._pool = pool
        self._stop = stop
        self.address: tuple[str, int] = sock.getsockname()[:2]
        self.failed_handshakes = 0
        self.served = 0
        self._count_lock = threading.Lock()

    def _count(self, failed: bool) -> None:
        with self._count_lock:
            if failed:
                self.failed_handshakes += 1
            else:
                self.served += 1

    @property
    def port(self) -> int:
        return self.address[1]

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()
        self._thread.join(5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    handler: Callable[[AttestedConnection], Any],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    credentials: ServerCredentials,
    max_workers: int = 16,
    timeout: float | None = 30.0,
) -> Server:
    """Serve attested TLS in background threads; returns at once with a :class:`Server`.

    Each accepted client is handled in a worker thread (at most ``max_workers`` at once);
    a client that fails the handshake or crashes its handler never affects the others.
    """
    lsock = socket.create_server((host, port), reuse_port=False)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="atls-conn")
    server: Server

    def one(sock: socket.socket) -> None:
        _kernel_timeouts(sock, timeout)
        conn = AttestedConnection(sock, server_engine(credentials))
        try:
            conn.handshake()
        except AtlsError as e:
            server._count(failed=True)
            log.info("handshake with a client failed: %s (%s)", e, e.code)
            sock.close()
            return
        try:
            server._count(failed=False)
            handler(conn)
        except AtlsError as e:
            log.info("client connection ended: %s", e)
        except Exception:
            log.exception("handler failed")
        finally:
            conn.close()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                sock, _ = lsock.accept()
            except OSError:
                if stop.is_set():
                    return
                continue
            pool.submit(one, sock)

    t = threading.Thread(target=accept_loop, name="atls-accept", daemon=True)
    server = Server(lsock, t, pool, stop)
    t.start()
    return server
