"""One HTTPS GET whose response is read over the very TLS connection whose certificate we
return, so evidence served over HTTPS can be bound to that connection's key (SecretVM).

The server certificate is an ordinary WebPKI/CA-issued one, checked with the CA bundle
given (or the system store) and the host name; this path carries no attestation itself,
and it sends nothing but the GET request line and headers.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from atls.errors import HandshakeError

__all__ = ["HttpsResponse", "get_over_one_connection"]

MAX_RESPONSE = 1 << 20


@dataclass(frozen=True)
class HttpsResponse:
    certificate_der: bytes
    status: int
    body: bytes


def _read_all(tls: ssl.SSLSocket, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            data = tls.recv(65536)
        except ssl.SSLZeroReturnError:
            break
        if not data:
            break
        size += len(data)
        if size > limit:
            raise HandshakeError("HTTPS response exceeds the size cap", code="https.too_large")
        chunks.append(data)
    return b"".join(chunks)


def _parse_http(raw: bytes) -> tuple[int, bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise HandshakeError("malformed HTTP response", code="https.malformed")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HandshakeError("malformed HTTP status line", code="https.malformed")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = _dechunk(body)
    elif b"content-length" in headers:
        n = int(headers[b"content-length"]) if headers[b"content-length"].isdigit() else -1
        if n < 0 or n > len(body):
            raise HandshakeError("truncated HTTP body", code="https.truncated")
        body = body[:n]
    return int(parts[1]), body


def _dechunk(data: bytes) -> bytes:
    out: list[bytes] = []
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            raise HandshakeError("truncated chunked body", code="https.truncated")
        size_s = data[pos:end].split(b";")[0].strip()
        try:
            size = int(size_s, 16)
        except ValueError:
            raise HandshakeError("bad chunk size", code="https.malformed") from None
        if size == 0:
            return b"".join(out)
        start = end + 2
        if start + size > len(data):
            raise HandshakeError("truncated chunked body", code="https.truncated")
        out.append(data[start : start + size])
        pos = start + size + 2


def get_over_one_connection(
    host: str,
    port: int,
    path: str,
    *,
    cafile: str | None = None,
    timeout: float = 30.0,
    check_hostname: bool = True,
) -> HttpsResponse:
    """GET ``path`` from ``host:port``; return the leaf certificate of *this* connection with
    the response."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = check_hostname
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cert = tls.getpeercert(binary_form=True)
            if not cert:
                raise HandshakeError("server sent no certificate", code="https.no_certificate")
            req = (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: atls\r\n"
                "Accept: */*\r\nConnection: close\r\n\r\n"
            )
            tls.sendall(req.encode("ascii"))
            raw_resp = _read_all(tls, MAX_RESPONSE)
    except ssl.SSLCertVerificationError as e:
        raise HandshakeError(
            f"certificate of {host} not trusted: {e.verify_message}", code="https.untrusted"
        ) from e
    except (OSError, ssl.SSLError) as e:
        raise HandshakeError(f"HTTPS to {host}:{port} failed: {e}", code="https.io") from e
    status, body = _parse_http(raw_resp)
    return HttpsResponse(cert, status, body)
