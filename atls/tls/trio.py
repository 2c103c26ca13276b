"""trio driver: :class:`AttestedStream` (a ``trio.abc.Stream``) over the sans-I/O engine."""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from atls.errors import AtlsError, HandshakeError
from atls.pipeline import CertificateVerifier
from atls.policy import Accepted
from atls.tls._credentials import ServerCredentials, utcnow
from atls.tls.engine import TLSEngine, client_engine, server_engine

__all__ = ["AttestedStream", "open_attested_stream", "serve_attested"]

log = logging.getLogger("atls.tls")

_DEFAULT_RECEIVE = 65536


class _Busy:
    """Raise trio.BusyResourceError when two tasks use one direction at once."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(f"another task is already {self._what}")
        self._held = True

    def __exit__(self, *exc: object) -> None:
        self._held = False


class AttestedStream(trio.abc.HalfCloseableStream):
    """TLS 1.3 over ``transport``; the client side refuses any peer whose evidence fails.

    The handshake runs on first use (or :meth:`do_handshake`). On the client side
    :attr:`attestation` holds the :class:`~atls.policy.Accepted` result afterwards. When
    ``offload_handshake`` is true, handshake steps run in a worker thread (servers in fresh
    mode, whose SNI callback generates evidence).
    """

    def __init__(
        self,
        transport: trio.abc.Stream,
        engine: TLSEngine,
        *,
        offload_handshake: bool = False,
        handshake_timeout: float | None = None,
    ) -> None:
        self.transport_stream = transport
        self._engine = engine
        self._offload = offload_handshake
        self._handshake_timeout = handshake_timeout
        self._handshake_lock = trio.Lock()
        self._send_lock = trio.Lock()
        self._send_busy = _Busy("sending")
        self._recv_busy = _Busy("receiving")
        self._closed = False
        self._broken: BaseException | None = None
        self._eof = False
        self._sent_eof = False

    @property
    def attestation(self) -> Accepted | None:
        return self._engine.attestation

    @property
    def engine(self) -> TLSEngine:
        return self._engine

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the attested stream was closed")
        if self._broken is not None:
            raise trio.BrokenResourceError("the attested stream is broken") from self._broken

    async def _flush(self) -> None:
        async with self._send_lock:
            data = self._engine.data_to_send()
            if data:
                await self.transport_stream.send_all(data)

    async def _step(self) -> bool:
        if self._offload:
            return await trio.to_thread.run_sync(self._engine.handshake)
        return self._engine.handshake()

    async def do_handshake(self) -> None:
        """Complete the handshake (idempotent). Raises typed :mod:`atls.errors`."""
        self._check_open()
        async with self._handshake_lock:
            if self._engine.handshake_done:
                return
            try:
                with trio.fail_after(self._handshake_timeout or float("inf")):
                    while True:
                        try:
                            done = await self._step()
                        finally:
                            # the alert after a failure must reach the peer
                            await self._flush()
                        if done:
                            return
                        data = await self.transport_stream.receive_some(_DEFAULT_RECEIVE)
                        if not data:
                            raise trio.BrokenResourceError("peer closed during the handshake")
                        self._engine.receive_data(bytes(data))
            except trio.TooSlowError as e:
                self._broken = e
                raise HandshakeError("handshake timed out", code="handshake.timeout") from e
            except (AtlsError, trio.BrokenResourceError, trio.ClosedResourceError) as e:
                if self._closed:
                    raise trio.ClosedResourceError("the attested stream was closed") from e
                self._broken = e
                if isinstance(e, AtlsError):
                    raise
                raise trio.BrokenResourceError(f"transport failed during handshake: {e}") from e

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_busy:
            self._check_open()
            if self._sent_eof:
                raise trio.ClosedResourceError("send_eof() was called")
            await self.do_handshake()
            try:
                self._engine.send(bytes(data))
                await self._flush()
            except AtlsError as e:
                self._broken = e
                raise trio.BrokenResourceError(str(e)) from e

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_busy:
            self._check_open()
            await self.transport_stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        with self._recv_busy:
            self._check_open()
            if max_bytes is not None and max_bytes < 1:
                raise ValueError("max_bytes must be >= 1")
            await self.do_handshake()
            n = max_bytes or _DEFAULT_RECEIVE
            while True:
                if self._eof:
                    return b""
                try:
                    data = self._engine.recv(n)
                except AtlsError as e:
                    self._broken = e
                    raise trio.BrokenResourceError(str(e)) from e
                await self._flush()
                if data is not None:
                    if data == b"":
                        self._eof = True
                    return data
                chunk = await self.transport_stream.receive_some(_DEFAULT_RECEIVE)
                self._engine.receive_data(bytes(chunk))

    async def send_eof(self) -> None:
        """Send close_notify (TLS 1.3 closes only our direction); receiving goes on."""
        with self._send_busy:
            self._check_open()
            if self._sent_eof:
                await trio.lowlevel.checkpoint()
                return
            await self.do_handshake()
            self._sent_eof = True
            self._engine.close()
            await self._flush()

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        try:
            if self._engine.handshake_done and self._broken is None:
                self._engine.close()
                with trio.move_on_after(1):
                    data = self._engine.data_to_send()
                    if data:
                        await self.transport_stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
            pass
        finally:
            await self.transport_stream.aclose()


async def open_attested_stream(
    host: str,
    port: int,
    *,
    verifier: CertificateVerifier,
    clock: Callable[[], _dt.datetime] = utcnow,
    handshake_timeout: float | None = 30.0,
) -> AttestedStream:
    """Connect over TCP and complete an attested handshake; raises on rejection."""
    try:
        tcp = await trio.open_tcp_stream(host, port)
    except OSError as e:
        raise HandshakeError(f"cannot connect to {host}:{port}: {e}", code="tls.connect") from e
    tcp.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, 1)
    stream = AttestedStream(
        tcp, client_engine(verifier, clock=clock), handshake_timeout=handshake_timeout
    )
    try:
        await stream.do_handshake()
    except trio.BrokenResourceError as e:
        await trio.aclose_forcefully(tcp)
        raise HandshakeError(
            f"connection failed during the handshake: {e}", code="handshake.transport"
        ) from e
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return stream


async def serve_attested(
    handler: Callable[[AttestedStream], Awaitable[Any]],
    port: int,
    *,
    credentials: ServerCredentials,
    host: str | None = None,
    handshake_timeout: float | None = 30.0,
    offload_handshake: bool | None = None,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve attested TLS on ``port``; ``handler(stream)`` runs for each client after a
    successful handshake. A failing client never affects the others.

    Use ``await nursery.start(serve_attested, ...)`` to get the listeners (and the port).
    """
    if offload_handshake is None:
        offload_handshake = getattr(credentials, "mode", "static") == "fresh"

    async def one(tcp: trio.SocketStream) -> None:
        tcp.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, 1)
        stream = AttestedStream(
            tcp,
            server_engine(credentials),
            offload_handshake=offload_handshake,
            handshake_timeout=handshake_timeout,
        )
        try:
            await stream.do_handshake()
        except (AtlsError, trio.BrokenResourceError) as e:
            log.info("handshake with a client failed: %s", e)
            await trio.aclose_forcefully(stream)
            return
        try:
            await handler(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            log.info("client connection ended: %s", e)
            await trio.aclose_forcefully(stream)
        except Exception:
            log.exception("handler failed")
            await trio.aclose_forcefully(stream)
        else:
            await stream.aclose()  # close_notify: the client reads a clean end of stream

    await trio.serve_tcp(one, port, host=host, task_status=task_status)
