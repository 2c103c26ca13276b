"""An explicit, bounded cache for SNP verification (pure; never reads the clock).

:class:`ChainCache` remembers two things:

* parsed certificates and CRLs, keyed by their exact DER bytes (parsing is not verification:
  a parsed entry is only ever used as input to the checks, which run again on a miss);
* verified ARK -> ASK/ASVK -> VCEK/VLEK chains, keyed by the SHA-256 of the exact DER bytes
  of (ARK, ASK, VCEK, and every CRL that was checked) and valid only for verification times
  inside the window the chain established (the intersection of the certificates' and CRLs'
  validity). Outside that window the verifier checks everything again and reports the
  precise error.

So a warm verification of a new report under a known VCEK costs the report parse, the
VCEK extension comparison and one ECDSA P-384 verification. The verifier produces the same
result with or without a cache (``cache=None`` disables it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec

from atls.evidence.snp._x509 import AmdCert, AmdCrl, parse_cert, parse_crl

__all__ = ["DEFAULT_CACHE", "ChainCache", "VerifiedChain"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    """The outcome of a successful chain verification (what a warm verification reuses)."""

    product: str
    key: ec.EllipticCurvePublicKey
    crl_checked: bool
    checks: tuple[str, ...]


class _Lru(Generic[T]):
    __slots__ = ("_data", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[bytes, T] = OrderedDict()

    def get(self, key: bytes) -> T | None:
        v = self._data.get(key)
        if v is not None:
            self._data.move_to_end(key)
        return v

    def put(self, key: bytes, value: T) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class ChainCache:
    """Bounded LRU caches of parsed certificates/CRLs and of verified chains (thread-safe).

    ``maxsize`` bounds the verified chains, ``parsed_maxsize`` the parsed certificates and
    CRLs. ``hits`` / ``misses`` count chain lookups (tests and benchmarks read them).
    """

    def __init__(self, maxsize: int = 128, *, parsed_maxsize: int = 512) -> None:
        if maxsize < 1 or parsed_maxsize < 1:
            raise ValueError("cache sizes must be positive")
        self._lock = threading.Lock()
        self._chains: _Lru[tuple[VerifiedChain, datetime, datetime]] = _Lru(maxsize)
        self._certs: _Lru[AmdCert] = _Lru(parsed_maxsize)
        self._crls: _Lru[AmdCrl] = _Lru(parsed_maxsize)
        self.hits = 0
        self.misses = 0

    def _parsed(self, lru: _Lru[T], der: bytes, parse: Callable[[bytes], T]) -> T:
        with self._lock:
            hit = lru.get(der)
        if hit is not None:
            return hit
        value = parse(der)  # ValueError propagates; failures are not cached
        with self._lock:
            lru.put(bytes(der), value)
        return value

    def cert(self, der: bytes) -> AmdCert:
        """``parse_cert(der)``, memoised by the exact bytes."""
        return self._parsed(self._certs, der, parse_cert)

    def crl(self, der: bytes) -> AmdCrl:
        """``parse_crl(der)``, memoised by the exact bytes."""
        return self._parsed(self._crls, der, parse_crl)

    def chain(self, key: bytes, at: datetime) -> VerifiedChain | None:
        """The verified chain stored under ``key`` if ``at`` lies in its window."""
        with self._lock:
            entry = self._chains.get(key)
            if entry is not None and entry[1] <= at <= entry[2]:
                self.hits += 1
                return entry[0]
            self.misses += 1
            return None

    def put_chain(
        self, key: bytes, value: VerifiedChain, not_before: datetime, not_after: datetime
    ) -> None:
        if not_before > not_after:
            return
        with self._lock:
            self._chains.put(key, (value, not_before, not_after))

    def clear(self) -> None:
        """Forget everything (benchmarks use it to measure cold verifications)."""
        with self._lock:
            self._chains.clear()
            self._certs.clear()
            self._crls.clear()
            self.hits = 0
            self.misses = 0

    def __len__(self) -> int:
        """The number of verified chains held."""
        with self._lock:
            return len(self._chains)


#: The cache :data:`atls.evidence.snp.SNP_REPORT` uses.
DEFAULT_CACHE = ChainCache()
