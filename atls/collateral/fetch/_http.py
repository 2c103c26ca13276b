"""HTTP for the fetchers: one GET with bounded body, status mapping and rate-limit retries.

The decisions (which status is retried, how long to wait, which error code a failure gets)
are pure functions; :class:`SyncTransport` and :class:`AsyncTransport` only do the I/O
(httpx, which runs under trio and asyncio alike).
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from atls import __version__
from atls.errors import CollateralUnavailableError, ConfigurationError

__all__ = [
    "MAX_BODY",
    "AsyncTransport",
    "HttpResult",
    "RetryPolicy",
    "SyncTransport",
    "TlsVerify",
    "error_for_status",
    "make_ssl_context",
    "retry_wait",
]

#: No vendor response comes near this (the largest, a PCK CRL, is tens of KiB).
MAX_BODY = 4 << 20

#: ``verify=``: an SSL context, a CA bundle file (PEM), or None for the system default.
TlsVerify = ssl.SSLContext | str | os.PathLike[str] | None

USER_AGENT = f"atls/{__version__} (collateral fetcher)"


def make_ssl_context(verify: TlsVerify) -> ssl.SSLContext:
    """An SSL context that verifies the server: the given one, one trusting a CA bundle, or
    the default (certifi's bundle, as httpx uses). Verification cannot be switched off."""
    if isinstance(verify, ssl.SSLContext):
        if verify.verify_mode != ssl.CERT_REQUIRED or not verify.check_hostname:
            raise ConfigurationError(
                "the SSL context for collateral fetching must verify certificates and host names",
                code="collateral.tls_config",
            )
        return verify
    if verify is None:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    path = os.fspath(verify)
    if not os.path.isfile(path):
        raise ConfigurationError(f"CA bundle {path} not found", code="collateral.tls_config")
    try:
        return ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError) as e:
        raise ConfigurationError(f"CA bundle {path}: {e}", code="collateral.tls_config") from e


@dataclass(frozen=True)
class HttpResult:
    """One HTTP response as received (header names lower-case)."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    fetched_at: _dt.datetime

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-case ('' when absent)."""
        raw = self.header("content-type") or ""
        return raw.split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded waiting on 429 (and 503 with Retry-After).

    ``max_attempts`` counts every request, the first included. A Retry-After longer than
    ``max_wait`` is not waited for at all, nor is anything beyond ``max_total_wait`` in sum:
    the caller gets :class:`CollateralUnavailableError` (code ``collateral.rate_limited``).
    Without a usable Retry-After the wait is ``default_wait``, doubled on each retry.
    """

    max_attempts: int = 4
    max_wait: float = 60.0
    max_total_wait: float = 120.0
    default_wait: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_wait < 0 or self.max_total_wait < 0:
            raise ConfigurationError("invalid retry policy", code="collateral.retry_policy")


def _parse_retry_after(value: str | None, now: _dt.datetime) -> float | None:
    """RFC 9110 Retry-After: delay-seconds or an HTTP-date. None if absent or unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value[:12]))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return max((when - now).total_seconds(), 0.0)


def retry_wait(
    res: HttpResult, *, attempt: int, waited: float, policy: RetryPolicy, what: str
) -> float | None:
    """Seconds to wait before retrying ``res`` (attempt numbers start at 0), or None when
    ``res`` is final. Raises ``collateral.rate_limited`` when the bound is reached."""
    retry_after = _parse_retry_after(res.header("retry-after"), res.fetched_at)
    if res.status == 429 or (res.status == 503 and retry_after is not None):
        wait = retry_after if retry_after is not None else policy.default_wait * (2**attempt)
        if wait > policy.max_wait:
            reason = (
                f"asks to retry after {wait:.0f} s (more than the {policy.max_wait:.0f} s bound)"
            )
        elif attempt + 1 >= policy.max_attempts:
            reason = f"still rate-limited after {policy.max_attempts} attempts"
        elif waited + wait > policy.max_total_wait:
            reason = f"would need more than {policy.max_total_wait:.0f} s of waiting in total"
        else:
            return wait
        raise CollateralUnavailableError(
            f"{what}: {res.url} answered HTTP {res.status} and {reason}",
            code="collateral.rate_limited",
        )
    return None


def error_for_status(res: HttpResult, what: str) -> CollateralUnavailableError | None:
    """The typed error for a non-200 final response (None for 200)."""
    if res.status == 200:
        return None
    detail = res.body[:200].decode("utf-8", "replace").strip()
    msg = f"{what}: {res.url} answered HTTP {res.status}" + (f" ({detail})" if detail else "")
    if res.status == 404:
        code = "collateral.not_found"
    elif res.status in (400, 422):
        code = "collateral.bad_request"
    elif res.status in (401, 403):
        code = "collateral.forbidden"
    elif res.status == 429:
        code = "collateral.rate_limited"
    elif res.status >= 500:
        code = "collateral.server_error"
    else:
        code = "collateral.http_status"
    return CollateralUnavailableError(msg, code=code)


def _network_error(url: str, what: str, e: Exception) -> CollateralUnavailableError:
    return CollateralUnavailableError(
        f"{what}: {url}: {type(e).__name__}: {e}", code="collateral.network"
    )


def _too_large(url: str, what: str) -> CollateralUnavailableError:
    return CollateralUnavailableError(
        f"{what}: {url}: response body larger than {MAX_BODY} bytes", code="collateral.too_large"
    )


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _headers(r: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in r.headers.items()}


def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds)


def _client_options(verify: TlsVerify, timeout: float) -> dict[str, Any]:
    """The settings both transports give their httpx client: TLS verification that cannot
    be turned off, timeouts, at most five redirects, the atls User-Agent."""
    return {
        "verify": make_ssl_context(verify),
        "timeout": _timeout(timeout),
        "follow_redirects": True,
        "max_redirects": 5,
        "headers": {"User-Agent": USER_AGENT},
    }


@dataclass
class SyncTransport:
    """Blocking GETs through one :class:`httpx.Client`."""

    verify: TlsVerify = None
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    client: httpx.Client | None = None

    def __post_init__(self) -> None:
        self._owned = self.client is None
        if self.client is None:
            self.client = httpx.Client(**_client_options(self.verify, self.timeout))

    def close(self) -> None:
        if self._owned and self.client is not None:
            self.client.close()

    def _once(self, url: str, what: str) -> HttpResult:
        assert self.client is not None
        try:
            with self.client.stream("GET", url) as r:
                chunks: list[bytes] = []
                size = 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise _too_large(url, what)
                    chunks.append(chunk)
                return HttpResult(url, r.status_code, _headers(r), b"".join(chunks), _now())
        except httpx.HTTPError as e:
            raise _network_error(url, what, e) from e

    def get(self, url: str, what: str) -> HttpResult:
        """GET ``url``; retry rate limits within the policy; raise for any non-200 result."""
        waited = 0.0
        attempt = 0
        while True:
            res = self._once(url, what)
            wait = retry_wait(res, attempt=attempt, waited=waited, policy=self.retry, what=what)
            if wait is None:
                err = error_for_status(res, what)
                if err is not None:
                    raise err
                return res
            self.sleep(wait)
            waited += wait
            attempt += 1


async def _anyio_sleep(seconds: float) -> None:
    import anyio

    await anyio.sleep(seconds)


@dataclass
class AsyncTransport:
    """Async GETs through one :class:`httpx.AsyncClient` (trio or asyncio)."""

    verify: TlsVerify = None
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], Awaitable[None]] = _anyio_sleep
    client: httpx.AsyncClient | None = None

    def __post_init__(self) -> None:
        self._owned = self.client is None
        if self.client is None:
            self.client = httpx.AsyncClient(**_client_options(self.verify, self.timeout))

    async def aclose(self) -> None:
        if self._owned and self.client is not None:
            await self.client.aclose()

    async def _once(self, url: str, what: str) -> HttpResult:
        assert self.client is not None
        try:
            async with self.client.stream("GET", url) as r:
                chunks: list[bytes] = []
                size = 0
                async for chunk in r.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise _too_large(url, what)
                    chunks.append(chunk)
                return HttpResult(url, r.status_code, _headers(r), b"".join(chunks), _now())
        except httpx.HTTPError as e:
            raise _network_error(url, what, e) from e

    async def get(self, url: str, what: str) -> HttpResult:
        waited = 0.0
        attempt = 0
        while True:
            res = await self._once(url, what)
            wait = retry_wait(res, attempt=attempt, waited=waited, policy=self.retry, what=what)
            if wait is None:
                err = error_for_status(res, what)
                if err is not None:
                    raise err
                return res
            await self.sleep(wait)
            waited += wait
            attempt += 1
