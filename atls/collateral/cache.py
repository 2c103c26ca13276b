"""On-disk cache of fetched collateral (the I/O edge; verifiers never read it).

One file per request (keyed by the request URL), holding the exact HTTP response the vendor
service sent (status, the headers that matter, body) plus the validity window that the
fetcher computed from the content itself: TCB info / QE identity ``nextUpdate``, CRL
``nextUpdate``, certificate ``notAfter`` (the earliest of them when a response carries
several, e.g. a document and its issuer chain).

Freshness rules (applied by the fetchers through :func:`freshness`):

1. An entry is *fresh* while ``at < not_after``; a fresh entry is served without any request.
2. An expired entry is refetched. If the refetch fails (or returns content that is itself
   expired), the caller gets :class:`~atls.errors.CollateralUnavailableError`...
3. ...unless the caller passed ``allow_stale_for=timedelta(...)`` (keyword-only) and the entry
   expired no longer ago than that. Stale results are logged and named in
   ``Collateral.sources``; there is no silent stale fallback.

Writes are atomic (temporary file in the same directory, fsync, ``os.replace``), so a reader
never sees a half-written entry and concurrent writers cannot corrupt one. Unreadable,
truncated or foreign files are treated as misses (and logged), never trusted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as _dt
import enum
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atls.errors import ConfigurationError

__all__ = [
    "ENV_CACHE_DIR",
    "CacheEntry",
    "CollateralCache",
    "Freshness",
    "check_allow_stale_for",
    "default_cache_dir",
    "freshness",
]

log = logging.getLogger(__name__)

ENV_CACHE_DIR = "ATLS_CACHE_DIR"
_FORMAT = "atls-collateral-cache-v1"
#: Larger cache files are ignored (no vendor response comes near this).
MAX_ENTRY_FILE = 16 << 20


def default_cache_dir() -> Path:
    """``$ATLS_CACHE_DIR``, else ``$XDG_CACHE_HOME/atls`` (``~/.cache/atls``)."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "atls"


def _iso(t: _dt.datetime) -> str:
    return t.astimezone(_dt.UTC).isoformat()


def _parse_time(v: Any) -> _dt.datetime:
    if not isinstance(v, str):
        raise ValueError("time is not a string")
    t = _dt.datetime.fromisoformat(v)
    if t.tzinfo is None:
        raise ValueError("naive time in cache entry")
    return t


@dataclass(frozen=True)
class CacheEntry:
    """One cached response and the validity window computed from its content."""

    key: str
    url: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    fetched_at: _dt.datetime
    not_after: _dt.datetime
    not_before: _dt.datetime | None = None

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def is_fresh(self, at: _dt.datetime) -> bool:
        return at < self.not_after

    def expired_for(self, at: _dt.datetime) -> _dt.timedelta:
        """How long ago the entry expired at ``at`` (zero while it is fresh)."""
        return max(at - self.not_after, _dt.timedelta(0))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "key": self.key,
            "url": self.url,
            "status": self.status,
            "headers": dict(self.headers),
            "fetched_at": _iso(self.fetched_at),
            "not_before": None if self.not_before is None else _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "body": base64.b64encode(self.body).decode("ascii"),
        }

    @classmethod
    def from_json(cls, obj: Any) -> CacheEntry:
        if not isinstance(obj, dict) or obj.get("format") != _FORMAT:
            raise ValueError("not an atls collateral cache entry")
        headers = obj.get("headers")
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise ValueError("bad headers")
        key, url, status, body = obj.get("key"), obj.get("url"), obj.get("status"), obj.get("body")
        if not isinstance(key, str) or not isinstance(url, str):
            raise ValueError("bad key or url")
        if not isinstance(status, int) or isinstance(status, bool):
            raise ValueError("bad status")
        if not isinstance(body, str):
            raise ValueError("bad body")
        nb = obj.get("not_before")
        return cls(
            key=key,
            url=url,
            status=status,
            headers=tuple(sorted((k.lower(), v) for k, v in headers.items())),
            body=base64.b64decode(body, validate=True),
            fetched_at=_parse_time(obj.get("fetched_at")),
            not_after=_parse_time(obj.get("not_after")),
            not_before=None if nb is None else _parse_time(nb),
        )


class Freshness(enum.Enum):
    FRESH = "fresh"
    STALE_ALLOWED = "stale-allowed"
    EXPIRED = "expired"


def check_allow_stale_for(allow_stale_for: _dt.timedelta | None) -> None:
    """Reject anything but ``None`` or a non-negative :class:`~datetime.timedelta`."""
    if allow_stale_for is None:
        return
    if not isinstance(allow_stale_for, _dt.timedelta) or allow_stale_for < _dt.timedelta(0):
        raise ConfigurationError(
            "allow_stale_for must be a non-negative datetime.timedelta (the maximum time "
            "past expiry for which stale collateral is accepted)",
            code="collateral.allow_stale_for",
        )


def freshness(
    entry: CacheEntry, at: _dt.datetime, *, allow_stale_for: _dt.timedelta | None = None
) -> Freshness:
    """Classify ``entry`` at ``at``. Stale is allowed only with an explicit maximum age."""
    check_allow_stale_for(allow_stale_for)
    if entry.is_fresh(at):
        return Freshness.FRESH
    if allow_stale_for is not None and entry.expired_for(at) <= allow_stale_for:
        return Freshness.STALE_ALLOWED
    return Freshness.EXPIRED


def _normalise_headers(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k.lower(), v) for k, v in headers.items()))


class CollateralCache:
    """A directory of cache entries (default :func:`default_cache_dir`)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self._dir = Path(directory) if directory is not None else default_cache_dir()

    @property
    def directory(self) -> Path:
        return self._dir

    def __repr__(self) -> str:
        return f"CollateralCache({str(self._dir)!r})"

    def path_for(self, key: str) -> Path:
        return self._dir / (hashlib.sha256(key.encode("utf-8")).hexdigest()[:40] + ".json")

    @staticmethod
    def make_entry(
        *,
        key: str,
        url: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        fetched_at: _dt.datetime,
        not_after: _dt.datetime,
        not_before: _dt.datetime | None = None,
    ) -> CacheEntry:
        return CacheEntry(
            key, url, status, _normalise_headers(headers), body, fetched_at, not_after, not_before
        )

    def _read(self, path: Path) -> CacheEntry | None:
        try:
            if path.stat().st_size > MAX_ENTRY_FILE:
                log.warning("ignoring oversized collateral cache file %s", path)
                return None
            obj = json.loads(path.read_bytes())
            return CacheEntry.from_json(obj)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, binascii.Error, UnicodeDecodeError) as e:
            log.warning("ignoring unreadable collateral cache file %s: %s", path, e)
            return None

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key``, or None (also for unreadable or mismatching files)."""
        entry = self._read(self.path_for(key))
        if entry is not None and entry.key != key:
            log.warning("collateral cache file %s belongs to another key", self.path_for(key))
            return None
        return entry

    def put(self, entry: CacheEntry) -> None:
        """Write ``entry`` atomically (a reader sees the old or the new file, nothing else)."""
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps(entry.to_json(), indent=1, sort_keys=True).encode("utf-8")
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path_for(entry.key))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):
            dfd = os.open(self._dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def delete(self, key: str) -> bool:
        try:
            self.path_for(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def __iter__(self) -> Iterator[CacheEntry]:
        if not self._dir.is_dir():
            return
        for p in sorted(self._dir.glob("*.json")):
            entry = self._read(p)
            if entry is not None and self.path_for(entry.key) == p:
                yield entry

    def clear(self) -> int:
        n = 0
        for entry in list(self):
            n += self.delete(entry.key)
        return n
