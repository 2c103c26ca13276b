"""The on-disk cache: round trip, expiry, refetch, explicit stale allowance, atomicity."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from atls.collateral import Collateral
from atls.collateral import fetch as fetch_mod
from atls.collateral.cache import (
    CacheEntry,
    CollateralCache,
    Freshness,
    default_cache_dir,
    freshness,
)
from atls.collateral.fetch import AsyncCollateralFetcher, CollateralFetcher, SnpTcb
from atls.errors import CollateralUnavailableError, ConfigurationError
from atls.testing.fake_pcs import (
    FakeVendorServer,
    IntelVector,
    add_amd_vectors,
    add_intel_vectors,
)

pytestmark = pytest.mark.vectors

UTC = dt.UTC


@pytest.fixture
def server() -> Iterator[FakeVendorServer]:
    with FakeVendorServer() as s:
        yield s


def _fetcher(server: FakeVendorServer, cache: CollateralCache) -> CollateralFetcher:
    return CollateralFetcher(
        pcs_url=server.base_url, kds_url=server.base_url, cache=cache, verify=server.ca_file
    )


def _mid(v: IntelVector) -> dt.datetime:
    return v.valid_from + (v.valid_until - v.valid_from) / 2


def _content(c: Collateral) -> tuple[object, ...]:
    return (c.certificates, c.crls, c.documents)


def test_round_trip_empty_cache_fetch_then_offline(
    server: FakeVendorServer, vectors: Path, tmp_path: Path
) -> None:
    v = add_intel_vectors(server, vectors, "zkdcap-tdx")
    amd = add_amd_vectors(server, vectors, crl_time=_mid(v) - dt.timedelta(days=1))
    milan = next(a for a in amd if a.product == "Milan")
    fmc, bl, tee, snp, ucode = milan.tcb
    tcb = SnpTcb(bl, tee, snp, ucode, fmc)
    cache = CollateralCache(tmp_path / "cache")
    assert list(cache) == []
    with _fetcher(server, cache) as f:
        first = f.fetch_intel(fmspc=v.fmspc, ca=v.ca, tee="tdx", at=_mid(v))
        first_amd = f.fetch_amd(product="Milan", chip_id=milan.hwid, tcb=tcb, at=_mid(v))
    n_requests = len(server.requests)
    assert n_requests == 7
    assert len(list(cache)) == 7
    assert not [p for p in cache.directory.iterdir() if p.name.startswith(".tmp-")]
    server.stop()
    with _fetcher(server, cache) as f:
        second = f.fetch_intel(
            fmspc=v.fmspc, ca=v.ca, tee="tdx", at=_mid(v) + dt.timedelta(hours=1)
        )
        second_amd = f.fetch_amd(product="Milan", chip_id=milan.hwid, tcb=tcb, at=_mid(v))
    assert _content(second) == _content(first)
    assert _content(second_amd) == _content(first_amd)
    assert all(s.startswith("cache:") for s in second.sources + second_amd.sources)
    assert len(server.requests) == n_requests
    # Without the cache the stopped server is simply unavailable.
    with (
        CollateralFetcher(pcs_url=server.base_url, cache=False, verify=server.ca_file) as f,
        pytest.raises(CollateralUnavailableError) as ei,
    ):
        f.fetch_intel(fmspc=v.fmspc, ca=v.ca, tee="tdx", at=_mid(v))
    assert ei.value.code == "collateral.network"


async def test_async_round_trip_offline(
    server: FakeVendorServer, vectors: Path, tmp_path: Path
) -> None:
    v = add_intel_vectors(server, vectors, "dcap-qvl-sgx")
    cache = CollateralCache(tmp_path)
    async with AsyncCollateralFetcher(
        pcs_url=server.base_url, cache=cache, verify=server.ca_file
    ) as f:
        first = await f.fetch_intel(fmspc=v.fmspc, ca=v.ca, tee="sgx", at=_mid(v))
    server.stop()
    async with AsyncCollateralFetcher(
        pcs_url=server.base_url, cache=cache, verify=server.ca_file
    ) as f:
        second = await f.fetch_intel(fmspc=v.fmspc, ca=v.ca, tee="sgx", at=_mid(v))
    assert _content(first) == _content(second)
    assert all(s.startswith("cache:") for s in second.sources)


def _serve_tcb(server: FakeVendorServer, vectors: Path, body: bytes) -> None:
    """Serve a TDX TCB info for FMSPC 90c06f000000 with the current Intel TCB signing chain."""
    chain = json.loads(
        (vectors / "tdx" / "dcap-qvl" / "tdx_quote_outdated_collateral.json").read_bytes()
    )["tcb_info_issuer_chain"].encode()
    server.add_intel_tcb_info(tee="tdx", fmspc="90c06f000000", body=body, issuer_chain_pem=chain)


def test_expiry_refetch_and_explicit_stale_allowance(
    server: FakeVendorServer, vectors: Path, tmp_path: Path
) -> None:
    """Two real TCB infos for FMSPC 90c06f000000: go-tdx-guest's (issued 2026-02-01, next
    update 2026-03-03) and dcap-qvl's (issued 2026-02-18, next update 2026-03-20)."""
    old = (vectors / "tdx" / "go-tdx-guest" / "sample_tcbinfo_response_v5").read_bytes()
    new = add_intel_vectors(server, vectors, "dcap-qvl-tdx-outdated").tcb_info_body
    _serve_tcb(server, vectors, old)
    cache = CollateralCache(tmp_path)
    path = "/tdx/certification/v4/tcb"

    def get(at: dt.datetime, **kw: object) -> Collateral:
        with _fetcher(server, cache) as f:
            return f.fetch_intel_tcb_info(fmspc="90c06f000000", at=at, **kw)  # type: ignore[arg-type]

    def issued(c: Collateral) -> str:
        return str(json.loads(c.documents[0].body)["issueDate"])

    c1 = get(dt.datetime(2026, 2, 10, tzinfo=UTC))
    assert issued(c1) == "2026-02-01T14:49:26Z" and server.count(path) == 1
    (entry,) = list(cache)
    assert entry.not_after == dt.datetime(2026, 3, 3, 14, 49, 26, tzinfo=UTC)
    # Intel publishes a newer one; the cached copy stays authoritative while fresh.
    _serve_tcb(server, vectors, new)
    c2 = get(dt.datetime(2026, 3, 1, tzinfo=UTC))
    assert issued(c2) == "2026-02-01T14:49:26Z" and server.count(path) == 1
    assert c2.sources[0].startswith("cache:")
    # Expired: refetched, and the new copy replaces the old one.
    c3 = get(dt.datetime(2026, 3, 5, tzinfo=UTC))
    assert issued(c3) == "2026-02-18T10:58:51Z" and server.count(path) == 2
    assert not c3.sources[0].startswith(("cache:", "stale-cache:"))
    (entry,) = list(cache)
    assert entry.not_after == dt.datetime(2026, 3, 20, 10, 58, 51, tzinfo=UTC)
    server.stop()
    # Fresh: served offline.
    assert issued(get(dt.datetime(2026, 3, 10, tzinfo=UTC))) == "2026-02-18T10:58:51Z"
    # Expired and the refetch fails: unavailable, with no silent stale fallback...
    late = dt.datetime(2026, 3, 25, tzinfo=UTC)
    with pytest.raises(CollateralUnavailableError) as ei:
        get(late)
    assert ei.value.code == "collateral.expired"
    assert "2026-03-20" in ei.value.message
    assert ei.value.__cause__ is not None
    # ... nor with an allowance shorter than the staleness (expired ~4.5 days ago) ...
    with pytest.raises(CollateralUnavailableError) as ei:
        get(late, allow_stale_for=dt.timedelta(days=4))
    assert ei.value.code == "collateral.expired"
    # ... but the caller may accept it explicitly, and the result says so.
    stale = get(late, allow_stale_for=dt.timedelta(days=5))
    assert issued(stale) == "2026-02-18T10:58:51Z"
    (src,) = stale.sources
    assert src.startswith("stale-cache:") and "allow_stale_for" in src


def test_vendor_serving_expired_collateral(
    server: FakeVendorServer, vectors: Path, tmp_path: Path
) -> None:
    """A refetch that returns already-expired content is no fresher than the cache."""
    v = add_intel_vectors(server, vectors, "go-tdx-guest")
    cache = CollateralCache(tmp_path)
    after = v.valid_until + dt.timedelta(days=30)
    with _fetcher(server, cache) as f:
        with pytest.raises(CollateralUnavailableError) as ei:
            f.fetch_intel_qe_identity(tee="tdx", at=after)
        assert ei.value.code == "collateral.expired"
        assert len(list(cache)) == 1  # kept: it is the newest there is
        got = f.fetch_intel_qe_identity(tee="tdx", at=after, allow_stale_for=dt.timedelta(days=31))
    assert got.sources[0].startswith("stale:")
    assert server.count("/tdx/certification/v4/qe/identity") == 2


def test_corrupt_or_foreign_cache_files_are_misses(
    server: FakeVendorServer, vectors: Path, tmp_path: Path
) -> None:
    v = add_intel_vectors(server, vectors, "go-tdx-guest")
    cache = CollateralCache(tmp_path)
    with _fetcher(server, cache) as f:
        f.fetch_intel_root_ca_crl(at=_mid(v))
    (entry,) = list(cache)
    path = cache.path_for(entry.key)
    # Truncated file: refetched.
    path.write_bytes(path.read_bytes()[:50])
    with _fetcher(server, cache) as f:
        assert not f.fetch_intel_root_ca_crl(at=_mid(v)).sources[0].startswith("cache:")
    assert server.count("/sgx/certification/v4/rootcacrl") == 2
    # A valid entry stored under another key's file name is not used.
    obj = json.loads(path.read_bytes())
    obj["key"] = "https://elsewhere.example/rootcacrl"
    path.write_text(json.dumps(obj))
    assert cache.get(entry.key) is None
    # A cached body that no longer parses (tampered) is not used either.
    obj["key"] = entry.key
    obj["body"] = "AAAA"
    path.write_text(json.dumps(obj))
    with _fetcher(server, cache) as f:
        assert not f.fetch_intel_root_ca_crl(at=_mid(v)).sources[0].startswith("cache:")
    assert server.count("/sgx/certification/v4/rootcacrl") == 3


def test_entry_round_trip_and_freshness(tmp_path: Path) -> None:
    t0 = dt.datetime(2025, 1, 1, tzinfo=UTC)
    e = CollateralCache.make_entry(
        key="https://x/y?z=1",
        url="https://x/y?z=1",
        status=200,
        headers={"Content-Type": "application/json", "TCB-Info-Issuer-Chain": "abc"},
        body=b"\x00\x01body",
        fetched_at=t0,
        not_after=t0 + dt.timedelta(days=30),
        not_before=t0 - dt.timedelta(days=1),
    )
    cache = CollateralCache(tmp_path / "a" / "b")
    cache.put(e)
    assert cache.get(e.key) == e
    assert e.header("tcb-info-issuer-chain") == "abc"
    assert CacheEntry.from_json(json.loads(json.dumps(e.to_json()))) == e
    assert (cache.directory.stat().st_mode & 0o777) == 0o700
    day = dt.timedelta(days=1)
    assert freshness(e, t0 + 29 * day) is Freshness.FRESH
    assert freshness(e, t0 + 30 * day) is Freshness.EXPIRED
    assert freshness(e, t0 + 31 * day, allow_stale_for=day) is Freshness.STALE_ALLOWED
    assert (
        freshness(e, t0 + 31 * day + dt.timedelta(seconds=1), allow_stale_for=day)
        is Freshness.EXPIRED
    )
    with pytest.raises(ConfigurationError):
        freshness(e, t0, allow_stale_for=-day)
    with pytest.raises(ConfigurationError):
        freshness(e, t0, allow_stale_for=3600)  # type: ignore[arg-type]
    assert cache.delete(e.key) and not cache.delete(e.key)
    cache.put(e)
    assert cache.clear() == 1 and list(cache) == []
    for bad in (
        {},
        {"format": "x"},
        {**e.to_json(), "status": "200"},
        {**e.to_json(), "fetched_at": "2025-01-01T00:00:00"},
    ):
        with pytest.raises(ValueError):
            CacheEntry.from_json(bad)


def test_concurrent_writers_never_leave_a_partial_file(tmp_path: Path) -> None:
    cache = CollateralCache(tmp_path)
    t0 = dt.datetime(2025, 1, 1, tzinfo=UTC)
    entries = [
        CollateralCache.make_entry(
            key="k",
            url="u",
            status=200,
            headers={},
            body=bytes([i]) * 200_000,
            fetched_at=t0,
            not_after=t0 + dt.timedelta(days=1),
        )
        for i in range(4)
    ]
    seen: list[CacheEntry | None] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.append(cache.get("k"))

    def writer(e: CacheEntry) -> None:
        for _ in range(10):
            cache.put(e)

    threads = [threading.Thread(target=writer, args=(e,)) for e in entries]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    r.join()
    final = cache.get("k")
    assert final in entries
    assert all(s is None or s in entries for s in seen)
    assert [p.name for p in tmp_path.iterdir()] == [cache.path_for("k").name]


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ATLS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "atls"
    assert CollateralCache().directory == tmp_path / "xdg" / "atls"
    monkeypatch.setenv("ATLS_CACHE_DIR", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("ATLS_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "atls"


def test_escape_hatches_are_keyword_only() -> None:
    functions = [
        getattr(fetch_mod, n)
        for n in fetch_mod.__all__
        if n.startswith(("fetch_", "collateral_for"))
    ]
    for cls in (CollateralFetcher, AsyncCollateralFetcher):
        functions += [
            getattr(cls, n) for n in dir(cls) if n.startswith(("fetch_", "get", "collateral_for"))
        ]
    assert len(functions) > 20
    for fn in functions:
        p = inspect.signature(fn).parameters.get("allow_stale_for")
        assert p is not None and p.kind is inspect.Parameter.KEYWORD_ONLY, fn
        assert p.default is None, fn


def test_stale_allowance_is_validated_before_any_request(
    server: FakeVendorServer, tmp_path: Path
) -> None:
    with _fetcher(server, CollateralCache(tmp_path)) as f, pytest.raises(ConfigurationError):
        f.fetch_intel_root_ca_crl(allow_stale_for=dt.timedelta(seconds=-1))
    assert server.requests == []
